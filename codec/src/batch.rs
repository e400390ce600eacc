//! Write batches that can be logged, and the oplog entry that logs them.
//!
//! Every write to a shard is a [`Batch`] of operations on named column families. The shard
//! commits it together with an oplog entry `oplog[lsn] = Entry {epoch, lsn, ops}` in one
//! RocksDB write batch, so the oplog is exactly the shard's history, with contiguous LSNs, and
//! a replica can replay it (DESIGN.md, "Replication").
//!
//! Entry encoding (all integers big-endian): `u8 version (1) | u64 epoch | u64 lsn |
//! u32 op count | ops | u32 CRC-32 of everything before it`, each op being `u8 kind | u8 column
//! family (index in ALL_CFS) | u32 key length | key | u32 value length | value`.

use crate::error::{Error, Result};
use crate::keys::ALL_CFS;

/// The oplog entry version this build writes.
pub const ENTRY_V1: u8 = 1;

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum OpKind {
    /// Set `key` to `value`.
    Put = 1,
    /// Remove `key`.
    Delete = 2,
    /// Merge `value` into `key` (counters).
    Merge = 3,
    /// Remove every key in `[key, value)`.
    DeleteRange = 4,
}

impl OpKind {
    fn from_u8(b: u8) -> Option<OpKind> {
        Some(match b {
            1 => OpKind::Put,
            2 => OpKind::Delete,
            3 => OpKind::Merge,
            4 => OpKind::DeleteRange,
            _ => return None,
        })
    }
}

/// One operation of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// What it does.
    pub kind: OpKind,
    /// Column family, as its index in [`ALL_CFS`] (which is append-only for this reason).
    pub cf: u8,
    /// The key (for a range delete, the start).
    pub key: Vec<u8>,
    /// The value (for a range delete, the end; empty for a delete).
    pub value: Vec<u8>,
}

impl Op {
    /// The column family's name.
    pub fn cf_name(&self) -> &'static str {
        ALL_CFS.get(self.cf as usize).copied().unwrap_or("")
    }
}

/// Operations to apply atomically to one shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    ops: Vec<Op>,
}

fn cf_index(cf: &str) -> u8 {
    // Column families are the constants of `keys`; an unknown name is a programming error
    // caught by every test that writes, so it maps to an index that fails at commit.
    ALL_CFS
        .iter()
        .position(|c| *c == cf)
        .unwrap_or(u8::MAX as usize) as u8
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Batch::default()
    }

    fn push(&mut self, kind: OpKind, cf: &str, key: &[u8], value: &[u8]) {
        self.ops.push(Op {
            kind,
            cf: cf_index(cf),
            key: key.to_vec(),
            value: value.to_vec(),
        });
    }

    /// Sets a key.
    pub fn put(&mut self, cf: &str, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.push(OpKind::Put, cf, key.as_ref(), value.as_ref());
    }

    /// Removes a key.
    pub fn delete(&mut self, cf: &str, key: impl AsRef<[u8]>) {
        self.push(OpKind::Delete, cf, key.as_ref(), &[]);
    }

    /// Merges an operand into a key.
    pub fn merge(&mut self, cf: &str, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.push(OpKind::Merge, cf, key.as_ref(), value.as_ref());
    }

    /// Removes every key in `[from, to)`.
    pub fn delete_range(&mut self, cf: &str, from: impl AsRef<[u8]>, to: impl AsRef<[u8]>) {
        self.push(OpKind::DeleteRange, cf, from.as_ref(), to.as_ref());
    }

    /// Whether the batch has no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The operations.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }
}

/// One committed batch as the oplog holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The primary's epoch when it was written.
    pub epoch: u64,
    /// Its log sequence number: contiguous per shard, from 1.
    pub lsn: u64,
    /// What it did.
    pub ops: Vec<Op>,
}

impl Entry {
    /// Encodes the entry with its version byte and checksum.
    pub fn encode(&self) -> Vec<u8> {
        encode_entry(self.epoch, self.lsn, &self.ops)
    }

    /// Decodes an entry, checking version, checksum and structure.
    pub fn decode(bytes: &[u8]) -> Result<Entry> {
        let bad = |why: &str| Error::Corrupt(format!("oplog entry: {why}"));
        if bytes.len() < 1 + 8 + 8 + 4 + 4 {
            return Err(bad("too short"));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        let crc = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32fast::hash(body) != crc {
            return Err(bad("checksum mismatch"));
        }
        if body[0] != ENTRY_V1 {
            return Err(bad(&format!("unknown version {}", body[0])));
        }
        let mut r = Reader { buf: &body[1..] };
        let epoch = r.u64().ok_or_else(|| bad("truncated"))?;
        let lsn = r.u64().ok_or_else(|| bad("truncated"))?;
        let n = r.u32().ok_or_else(|| bad("truncated"))? as usize;
        let mut ops = Vec::with_capacity(n.min(4096));
        for _ in 0..n {
            let kind = r
                .u8()
                .and_then(OpKind::from_u8)
                .ok_or_else(|| bad("bad op kind"))?;
            let cf = r.u8().ok_or_else(|| bad("truncated"))?;
            if cf as usize >= ALL_CFS.len() {
                return Err(bad("unknown column family"));
            }
            let key = r.bytes().ok_or_else(|| bad("truncated key"))?.to_vec();
            let value = r.bytes().ok_or_else(|| bad("truncated value"))?.to_vec();
            ops.push(Op {
                kind,
                cf,
                key,
                value,
            });
        }
        if !r.buf.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(Entry { epoch, lsn, ops })
    }
}

/// Encodes an entry from its parts (so a commit need not copy its operations).
pub fn encode_entry(epoch: u64, lsn: u64, ops: &[Op]) -> Vec<u8> {
    let size: usize = 1
        + 8
        + 8
        + 4
        + 4
        + ops
            .iter()
            .map(|o| 2 + 8 + o.key.len() + o.value.len())
            .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.push(ENTRY_V1);
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend_from_slice(&lsn.to_be_bytes());
    out.extend_from_slice(&(ops.len() as u32).to_be_bytes());
    for op in ops {
        out.push(op.kind as u8);
        out.push(op.cf);
        out.extend_from_slice(&(op.key.len() as u32).to_be_bytes());
        out.extend_from_slice(&op.key);
        out.extend_from_slice(&(op.value.len() as u32).to_be_bytes());
        out.extend_from_slice(&op.value);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{CF_COUNTERS, CF_HOME, CF_TWEETS};

    fn sample() -> Entry {
        let mut b = Batch::new();
        b.put(CF_TWEETS, [1, 2, 3], b"doc");
        b.delete(CF_HOME, [9; 16]);
        b.merge(CF_COUNTERS, [7; 9], 1i64.to_le_bytes());
        b.delete_range(CF_HOME, [0; 16], [1; 16]);
        Entry {
            epoch: 3,
            lsn: 42,
            ops: b.ops,
        }
    }

    #[test]
    fn entries_round_trip() {
        let e = sample();
        assert_eq!(Entry::decode(&e.encode()).expect("decodes"), e);
        let empty = Entry {
            epoch: 0,
            lsn: 1,
            ops: vec![],
        };
        assert_eq!(Entry::decode(&empty.encode()).expect("decodes"), empty);
    }

    #[test]
    fn damaged_entries_are_refused() {
        let bytes = sample().encode();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(
                matches!(Entry::decode(&bad), Err(Error::Corrupt(_))),
                "flip at {i}"
            );
        }
        for n in 0..bytes.len() {
            assert!(
                matches!(Entry::decode(&bytes[..n]), Err(Error::Corrupt(_))),
                "cut at {n}"
            );
        }
    }

    #[test]
    fn ops_name_their_column_family() {
        let e = sample();
        assert_eq!(e.ops[0].cf_name(), CF_TWEETS);
        assert_eq!(e.ops[1].kind, OpKind::Delete);
    }
}
