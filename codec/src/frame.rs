//! The replication wire format: pure code over bytes, no I/O, so it can be fuzzed and
//! property-tested.
//!
//! A frame is `u8 version (1) | u8 kind | u32 body length | body | u32 CRC-32 of everything
//! before it`, integers big-endian. Strings and byte strings in a body are `u32 length | bytes`.
//! [`decode`] answers `Ok(None)` while the bytes so far could still become a valid frame
//! (incomplete) and `Err` once they never can (invalid): a bad version, kind, length or
//! checksum, or a body that does not parse exactly.

use bytes::{Buf, BufMut};

use crate::error::Error;

/// The frame version this build speaks.
pub const FRAME_V1: u8 = 1;
/// Largest body accepted: bounds what a peer can make us buffer.
pub const MAX_BODY: usize = 64 << 20;
/// Bytes before the body: version, kind, body length.
const HEADER: usize = 1 + 1 + 4;
/// The highest frame kind this build knows.
const LAST_KIND: u8 = 12;
/// Bytes after the body: the checksum.
const TRAILER: usize = 4;

/// Which side of a replication link a node speaks as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    /// Serves its oplog.
    Primary = 1,
    /// Pulls and applies.
    Replica = 2,
}

/// Why a peer refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    /// The node asked is not a primary.
    NotPrimary = 1,
    /// The entries asked for were trimmed: bootstrap from a checkpoint.
    Trimmed = 2,
    /// The asked node saw a higher epoch and no longer serves as primary.
    Deposed = 3,
    /// The request made no sense (unknown shard, wrong cluster, frame out of turn).
    BadRequest = 4,
    /// The peer failed internally.
    Internal = 5,
    /// The thing asked for (an image file) is not on the asked node.
    NotFound = 6,
}

/// One message on a replication stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// First frame of a replica's stream: who it is and where its copy of the shard stands.
    Hello {
        /// The sender's node name.
        node: String,
        /// The cluster name; peers of another cluster are refused.
        cluster: String,
        /// The shard this stream is about.
        shard: u32,
        /// The role the sender holds.
        role: Role,
        /// The epoch the sender's copy writes (or follows) with.
        epoch: u64,
        /// The sender's last LSN of the shard.
        last_lsn: u64,
        /// The epoch of the sender's entry at `last_lsn` (0 if none).
        last_epoch: u64,
    },
    /// The primary's answer to a Hello.
    Welcome {
        /// The shard.
        shard: u32,
        /// The primary's epoch.
        epoch: u64,
        /// The primary's last LSN.
        last_lsn: u64,
        /// The oldest LSN the primary still holds (0 if its oplog is empty).
        oldest_lsn: u64,
        /// The last LSN where the replica's history agrees with the primary's; entries after
        /// it on the replica are divergent.
        common_lsn: u64,
        /// The primary's public HTTP address, which the replica names when refusing writes.
        api: String,
    },
    /// Ask for entries after `after_lsn`, waiting up to `wait_ms` if there are none yet.
    Pull {
        /// The shard.
        shard: u32,
        /// The epoch the replica follows.
        epoch: u64,
        /// The replica's last applied LSN.
        after_lsn: u64,
        /// About how many bytes of entries to send at most.
        max_bytes: u32,
        /// How long the primary may hold the request when it has nothing new.
        wait_ms: u32,
    },
    /// Entries answering a Pull, in LSN order.
    Entries {
        /// The shard.
        shard: u32,
        /// The primary's epoch.
        epoch: u64,
        /// (LSN, raw oplog entry) pairs.
        entries: Vec<(u64, Vec<u8>)>,
        /// The primary's last LSN when it answered (for lag).
        primary_last_lsn: u64,
    },
    /// The replica has made everything up to `applied_lsn` durable.
    Ack {
        /// The shard.
        shard: u32,
        /// The replica's last durable LSN.
        applied_lsn: u64,
    },
    /// Ask for a checkpoint of the shard.
    Snapshot {
        /// The shard.
        shard: u32,
    },
    /// A piece of one checkpoint file.
    CheckpointChunk {
        /// The shard.
        shard: u32,
        /// File name within the checkpoint directory.
        file: String,
        /// Where `data` starts in the file.
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
        /// Whether this is the last chunk of the whole checkpoint.
        last: bool,
    },
    /// A refusal.
    Error {
        /// What kind.
        code: ErrorCode,
        /// For people.
        message: String,
    },
    /// First and only request of a step stream: run one shard step (the engine's `Step`, as
    /// JSON) on the shard, which the receiving node holds.
    Step {
        /// The cluster name; peers of another cluster are refused.
        cluster: String,
        /// The shard the step belongs on.
        shard: u32,
        /// The step, JSON.
        body: Vec<u8>,
    },
    /// The answer to a Step: the engine's `Reply` as JSON when `ok`, else its failure.
    StepReply {
        /// Whether the step ran.
        ok: bool,
        /// The reply or the failure, JSON.
        body: Vec<u8>,
    },
    /// First and only request of a blob stream: send the image file whose bytes have this
    /// SHA-256 (lowercase hex). A copy asks its primary for the files its shard's media rows
    /// name before it applies them.
    BlobGet {
        /// The cluster name; peers of another cluster are refused.
        cluster: String,
        /// The file's SHA-256, lowercase hex.
        sha256: String,
    },
    /// The answer to a BlobGet, in pieces: the file's bytes in order, the last piece marked
    /// (or an Error frame, NotFound if the file is not there).
    BlobData {
        /// The next bytes of the file (at most 1 MiB).
        data: Vec<u8>,
        /// Whether this is the last piece.
        last: bool,
    },
}

impl Frame {
    fn kind(&self) -> u8 {
        match self {
            Frame::Hello { .. } => 1,
            Frame::Welcome { .. } => 2,
            Frame::Pull { .. } => 3,
            Frame::Entries { .. } => 4,
            Frame::Ack { .. } => 5,
            Frame::Snapshot { .. } => 6,
            Frame::CheckpointChunk { .. } => 7,
            Frame::Error { .. } => 8,
            Frame::Step { .. } => 9,
            Frame::StepReply { .. } => 10,
            Frame::BlobGet { .. } => 11,
            Frame::BlobData { .. } => 12,
        }
    }

    /// Appends the encoded frame to `dst`.
    pub fn encode(&self, dst: &mut impl BufMut) {
        let mut body = Vec::new();
        self.encode_body(&mut body);
        let mut out = Vec::with_capacity(HEADER + body.len() + TRAILER);
        out.put_u8(FRAME_V1);
        out.put_u8(self.kind());
        out.put_u32(body.len() as u32);
        out.extend_from_slice(&body);
        let crc = crc32fast::hash(&out);
        out.put_u32(crc);
        dst.put_slice(&out);
    }

    /// The encoded frame as a vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    fn encode_body(&self, b: &mut Vec<u8>) {
        match self {
            Frame::Hello {
                node,
                cluster,
                shard,
                role,
                epoch,
                last_lsn,
                last_epoch,
            } => {
                put_bytes(b, node.as_bytes());
                put_bytes(b, cluster.as_bytes());
                b.put_u32(*shard);
                b.put_u8(*role as u8);
                b.put_u64(*epoch);
                b.put_u64(*last_lsn);
                b.put_u64(*last_epoch);
            }
            Frame::Welcome {
                shard,
                epoch,
                last_lsn,
                oldest_lsn,
                common_lsn,
                api,
            } => {
                b.put_u32(*shard);
                b.put_u64(*epoch);
                b.put_u64(*last_lsn);
                b.put_u64(*oldest_lsn);
                b.put_u64(*common_lsn);
                put_bytes(b, api.as_bytes());
            }
            Frame::Pull {
                shard,
                epoch,
                after_lsn,
                max_bytes,
                wait_ms,
            } => {
                b.put_u32(*shard);
                b.put_u64(*epoch);
                b.put_u64(*after_lsn);
                b.put_u32(*max_bytes);
                b.put_u32(*wait_ms);
            }
            Frame::Entries {
                shard,
                epoch,
                entries,
                primary_last_lsn,
            } => {
                b.put_u32(*shard);
                b.put_u64(*epoch);
                b.put_u64(*primary_last_lsn);
                b.put_u32(entries.len() as u32);
                for (lsn, raw) in entries {
                    b.put_u64(*lsn);
                    put_bytes(b, raw);
                }
            }
            Frame::Ack { shard, applied_lsn } => {
                b.put_u32(*shard);
                b.put_u64(*applied_lsn);
            }
            Frame::Snapshot { shard } => b.put_u32(*shard),
            Frame::CheckpointChunk {
                shard,
                file,
                offset,
                data,
                last,
            } => {
                b.put_u32(*shard);
                put_bytes(b, file.as_bytes());
                b.put_u64(*offset);
                put_bytes(b, data);
                b.put_u8(u8::from(*last));
            }
            Frame::Error { code, message } => {
                b.put_u16(*code as u16);
                put_bytes(b, message.as_bytes());
            }
            Frame::Step {
                cluster,
                shard,
                body,
            } => {
                put_bytes(b, cluster.as_bytes());
                b.put_u32(*shard);
                put_bytes(b, body);
            }
            Frame::StepReply { ok, body } => {
                b.put_u8(u8::from(*ok));
                put_bytes(b, body);
            }
            Frame::BlobGet { cluster, sha256 } => {
                put_bytes(b, cluster.as_bytes());
                put_bytes(b, sha256.as_bytes());
            }
            Frame::BlobData { data, last } => {
                put_bytes(b, data);
                b.put_u8(u8::from(*last));
            }
        }
    }
}

fn put_bytes(b: &mut Vec<u8>, bytes: &[u8]) {
    b.put_u32(bytes.len() as u32);
    b.put_slice(bytes);
}

/// Decodes the frame at the start of `buf`: `Ok(Some((frame, bytes used)))`, `Ok(None)` if
/// more bytes are needed, `Err` if these bytes can never be a valid frame.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, Error> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] != FRAME_V1 {
        return Err(invalid(format!("unknown frame version {}", buf[0])));
    }
    if buf.len() >= 2 && !(1..=LAST_KIND).contains(&buf[1]) {
        return Err(invalid(format!("unknown frame kind {}", buf[1])));
    }
    if buf.len() < HEADER {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[2], buf[3], buf[4], buf[5]]) as usize;
    if len > MAX_BODY {
        return Err(invalid(format!("frame body of {len} bytes is too large")));
    }
    let total = HEADER + len + TRAILER;
    if buf.len() < total {
        return Ok(None);
    }
    let (framed, mut crc) = buf[..total].split_at(HEADER + len);
    if crc.get_u32() != crc32fast::hash(framed) {
        return Err(invalid("frame checksum mismatch".into()));
    }
    let mut body = &framed[HEADER..];
    let frame = decode_body(buf[1], &mut body).ok_or_else(|| invalid("malformed body".into()))?;
    if body.has_remaining() {
        return Err(invalid("trailing bytes in frame body".into()));
    }
    Ok(Some((frame, total)))
}

/// Decodes a frame from the front of `buf`, consuming it if complete.
pub fn decode_buf(buf: &mut bytes::BytesMut) -> Result<Option<Frame>, Error> {
    match decode(buf)? {
        Some((frame, used)) => {
            buf.advance(used);
            Ok(Some(frame))
        }
        None => Ok(None),
    }
}

fn invalid(why: String) -> Error {
    Error::Protocol(why)
}

fn decode_body(kind: u8, b: &mut &[u8]) -> Option<Frame> {
    Some(match kind {
        1 => Frame::Hello {
            node: string(b)?,
            cluster: string(b)?,
            shard: u32_(b)?,
            role: match u8_(b)? {
                1 => Role::Primary,
                2 => Role::Replica,
                _ => return None,
            },
            epoch: u64_(b)?,
            last_lsn: u64_(b)?,
            last_epoch: u64_(b)?,
        },
        2 => Frame::Welcome {
            shard: u32_(b)?,
            epoch: u64_(b)?,
            last_lsn: u64_(b)?,
            oldest_lsn: u64_(b)?,
            common_lsn: u64_(b)?,
            api: string(b)?,
        },
        3 => Frame::Pull {
            shard: u32_(b)?,
            epoch: u64_(b)?,
            after_lsn: u64_(b)?,
            max_bytes: u32_(b)?,
            wait_ms: u32_(b)?,
        },
        4 => {
            let shard = u32_(b)?;
            let epoch = u64_(b)?;
            let primary_last_lsn = u64_(b)?;
            let n = u32_(b)? as usize;
            // Each entry takes at least 12 bytes, so a lying count cannot make us allocate.
            if n > b.remaining() / 12 {
                return None;
            }
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                entries.push((u64_(b)?, bytes_(b)?));
            }
            Frame::Entries {
                shard,
                epoch,
                entries,
                primary_last_lsn,
            }
        }
        5 => Frame::Ack {
            shard: u32_(b)?,
            applied_lsn: u64_(b)?,
        },
        6 => Frame::Snapshot { shard: u32_(b)? },
        7 => Frame::CheckpointChunk {
            shard: u32_(b)?,
            file: string(b)?,
            offset: u64_(b)?,
            data: bytes_(b)?,
            last: match u8_(b)? {
                0 => false,
                1 => true,
                _ => return None,
            },
        },
        8 => Frame::Error {
            code: match u16_(b)? {
                1 => ErrorCode::NotPrimary,
                2 => ErrorCode::Trimmed,
                3 => ErrorCode::Deposed,
                4 => ErrorCode::BadRequest,
                5 => ErrorCode::Internal,
                6 => ErrorCode::NotFound,
                _ => return None,
            },
            message: string(b)?,
        },
        9 => Frame::Step {
            cluster: string(b)?,
            shard: u32_(b)?,
            body: bytes_(b)?,
        },
        10 => Frame::StepReply {
            ok: match u8_(b)? {
                0 => false,
                1 => true,
                _ => return None,
            },
            body: bytes_(b)?,
        },
        11 => Frame::BlobGet {
            cluster: string(b)?,
            sha256: string(b)?,
        },
        12 => Frame::BlobData {
            data: bytes_(b)?,
            last: match u8_(b)? {
                0 => false,
                1 => true,
                _ => return None,
            },
        },
        _ => return None,
    })
}

fn u8_(b: &mut &[u8]) -> Option<u8> {
    (b.remaining() >= 1).then(|| b.get_u8())
}
fn u16_(b: &mut &[u8]) -> Option<u16> {
    (b.remaining() >= 2).then(|| b.get_u16())
}
fn u32_(b: &mut &[u8]) -> Option<u32> {
    (b.remaining() >= 4).then(|| b.get_u32())
}
fn u64_(b: &mut &[u8]) -> Option<u64> {
    (b.remaining() >= 8).then(|| b.get_u64())
}
fn bytes_(b: &mut &[u8]) -> Option<Vec<u8>> {
    let n = u32_(b)? as usize;
    if b.remaining() < n {
        return None;
    }
    let out = b[..n].to_vec();
    b.advance(n);
    Some(out)
}
fn string(b: &mut &[u8]) -> Option<String> {
    String::from_utf8(bytes_(b)?).ok()
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
