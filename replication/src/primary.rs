//! The serving side: every node listens; while it is the primary it answers each replica's
//! stream (one per shard) with Welcome, then Entries for each Pull, records Acks, and streams
//! a checkpoint on request.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::frame::{ErrorCode, Frame, Role};
use crate::link::{self, FrameReader};
use crate::{bootstrap, Replication};

/// Largest Entries frame we build, whatever a Pull asks.
const MAX_PULL_BYTES: usize = 8 << 20;
/// Longest a Pull may wait for new entries.
const MAX_WAIT: Duration = Duration::from_secs(5);

/// Where a replica's log stops agreeing with ours. `history` is our (epoch, first LSN) list;
/// the replica's last entry is `their_last` with epoch `their_epoch`. Within one epoch there
/// is one writer, so an entry's epoch tells which primary wrote it, and two copies agree up to
/// where that epoch ends in our history.
pub fn common_point(
    history: &[(u64, u64)],
    our_last: u64,
    their_last: u64,
    their_epoch: u64,
) -> u64 {
    if their_last == 0 {
        return 0;
    }
    // Our last LSN written under an epoch <= theirs: the next epoch's start, less one.
    let end = history
        .iter()
        .find(|(e, _)| *e > their_epoch)
        .map_or(our_last, |(_, first)| first.saturating_sub(1));
    // Their epoch is unknown to us (and lower ones exist): we agree only up to the start of
    // the first epoch we have that is higher, which `end` already is.
    their_last.min(end).min(our_last)
}

/// Accepts connections until the endpoint closes.
pub(crate) async fn accept_loop(repl: Arc<Replication>) {
    while let Some(incoming) = repl.endpoint.accept().await {
        let repl = Arc::clone(&repl);
        tokio::spawn(async move {
            let conn = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "replication handshake failed");
                    return;
                }
            };
            // Who is on the other end: the node its certificate was issued for.
            let Some(peer) = crate::tls::peer_node(&conn) else {
                tracing::warn!(remote = %conn.remote_address(), "a replication peer's certificate names no node; closing");
                conn.close(0u32.into(), b"no node name in the certificate");
                return;
            };
            let peer = Arc::new(peer);
            loop {
                let (send, recv) = match conn.accept_bi().await {
                    Ok(s) => s,
                    Err(_) => return,
                };
                let repl = Arc::clone(&repl);
                let peer = Arc::clone(&peer);
                tokio::spawn(async move {
                    let mut send = send;
                    if let Err(e) =
                        serve_stream(&repl, &peer, &mut send, FrameReader::new(recv)).await
                    {
                        tracing::debug!(error = %e, "replication stream ended");
                        let (code, message) = match &e {
                            Error::Refused { code, message } => (*code, message.clone()),
                            other => (ErrorCode::Internal, other.to_string()),
                        };
                        let _ = link::send(&mut send, &Frame::Error { code, message }).await;
                    }
                    let _ = send.finish();
                });
            }
        });
    }
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> Error {
    Error::Refused {
        code,
        message: message.into(),
    }
}

async fn serve_stream(
    repl: &Arc<Replication>,
    certified: &str,
    send: &mut quinn::SendStream,
    mut recv: FrameReader,
) -> Result<()> {
    if !repl.admits(certified) {
        return Err(refuse(
            ErrorCode::BadRequest,
            format!("node {certified:?} is not a member of this cluster"),
        ));
    }
    let (peer, cluster, shard, their_epoch_now, last_lsn, last_epoch) = match recv.next().await? {
        Frame::Hello {
            node,
            cluster,
            shard,
            role: Role::Replica,
            epoch,
            last_lsn,
            last_epoch,
        } => (node, cluster, shard, epoch, last_lsn, last_epoch),
        Frame::Step {
            cluster,
            shard,
            body,
        } => return crate::steps::serve(repl, send, cluster, shard, body).await,
        Frame::BlobGet { cluster, sha256 } => {
            return crate::blobs::serve(repl, send, cluster, sha256).await
        }
        _ => {
            return Err(refuse(
                ErrorCode::BadRequest,
                "expected a replica's Hello, a Step or a BlobGet",
            ))
        }
    };
    if cluster != repl.config.cluster {
        return Err(refuse(
            ErrorCode::BadRequest,
            format!("this node is in cluster {:?}", repl.config.cluster),
        ));
    }
    // A replica's acknowledgements are counted under its name: it must be its own.
    if peer != certified {
        return Err(refuse(
            ErrorCode::BadRequest,
            format!(
                "the Hello names node {peer:?}, but the certificate was issued for {certified:?}"
            ),
        ));
    }
    let shard = shard as usize;
    let state = repl
        .shards
        .get(shard)
        .ok_or_else(|| refuse(ErrorCode::BadRequest, format!("no shard {shard}")))?;
    if !repl.node.serves_oplog(shard) {
        return Err(refuse(
            ErrorCode::NotPrimary,
            format!("this node is not the primary of shard {shard}"),
        ));
    }
    let node = Arc::clone(&repl.node);
    let (pos, history, oldest) = tokio::task::spawn_blocking(move || {
        Ok::<_, Error>((
            node.log_position(shard)?,
            node.epoch_history(shard)?,
            node.oldest_lsn(shard)?,
        ))
    })
    .await
    .map_err(|e| Error::Connection(e.to_string()))??;
    if their_epoch_now > pos.epoch {
        // Someone was promoted after us: we are a deposed primary and must stop writing.
        tracing::error!(
            peer,
            their_epoch_now,
            our_epoch = pos.epoch,
            shard,
            "deposed by a higher epoch; refusing writes"
        );
        if let Err(e) = repl.node.demote_shard(shard, "") {
            tracing::error!(error = %e, "recording the demotion failed: a restart without --replica-of would take writes");
        }
        return Err(refuse(
            ErrorCode::Deposed,
            "this primary was deposed by a higher epoch",
        ));
    }
    let common = common_point(&history, pos.last_lsn, last_lsn, last_epoch);
    link::send(
        send,
        &Frame::Welcome {
            shard: shard as u32,
            epoch: pos.epoch,
            last_lsn: pos.last_lsn,
            oldest_lsn: oldest,
            common_lsn: common,
            api: repl.config.api.clone(),
        },
    )
    .await?;
    tracing::info!(peer, shard, last_lsn, common, "replica connected");
    state.ack(&peer, common);
    let stream = state.connected(&peer);
    let result = serve_pulls(repl, shard, &peer, send, &mut recv).await;
    state.disconnected(&peer, stream);
    result
}

async fn serve_pulls(
    repl: &Arc<Replication>,
    shard: usize,
    peer: &str,
    send: &mut quinn::SendStream,
    recv: &mut FrameReader,
) -> Result<()> {
    let state = &repl.shards[shard];
    loop {
        match recv.next().await? {
            Frame::Ack { applied_lsn, .. } => state.ack(peer, applied_lsn),
            Frame::Pull {
                after_lsn,
                max_bytes,
                wait_ms,
                ..
            } => {
                if !repl.node.serves_oplog(shard) {
                    return Err(refuse(
                        ErrorCode::NotPrimary,
                        "this node is no longer the shard's primary",
                    ));
                }
                let max_bytes = (max_bytes as usize).clamp(1, MAX_PULL_BYTES);
                let wait = Duration::from_millis(wait_ms.into()).min(MAX_WAIT);
                let mut committed = state.committed.subscribe();
                let mut entries = read(repl, shard, after_lsn, max_bytes).await?;
                if entries.is_empty() && !wait.is_zero() {
                    let _ =
                        tokio::time::timeout(wait, committed.wait_for(|l| *l > after_lsn)).await;
                    entries = read(repl, shard, after_lsn, max_bytes).await?;
                }
                let pos = repl.node.log_position(shard)?;
                link::send(
                    send,
                    &Frame::Entries {
                        shard: shard as u32,
                        epoch: pos.epoch,
                        entries,
                        primary_last_lsn: pos.last_lsn,
                    },
                )
                .await?;
            }
            Frame::Snapshot { .. } => bootstrap::send_checkpoint(repl, shard, send).await?,
            other => {
                return Err(refuse(
                    ErrorCode::BadRequest,
                    format!("unexpected frame {other:?}"),
                ))
            }
        }
    }
}

/// Entries after `after`, or Trimmed if the next one is gone.
async fn read(
    repl: &Arc<Replication>,
    shard: usize,
    after: u64,
    max_bytes: usize,
) -> Result<Vec<(u64, Vec<u8>)>> {
    let node = Arc::clone(&repl.node);
    let (oldest, entries) = tokio::task::spawn_blocking(move || {
        Ok::<_, Error>((
            node.oldest_lsn(shard)?,
            node.read_oplog(shard, after, max_bytes)?,
        ))
    })
    .await
    .map_err(|e| Error::Connection(e.to_string()))??;
    if oldest > after + 1 {
        return Err(refuse(
            ErrorCode::Trimmed,
            format!("entries after {after} were trimmed (oldest held: {oldest})"),
        ));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::common_point;

    #[test]
    fn common_point_follows_epoch_history() {
        // We were promoted at LSN 101 (epoch 2) after the old primary wrote 1..=100 in epoch 1.
        let history = [(1, 1), (2, 101)];
        // A replica that saw up to 80 of epoch 1: all common.
        assert_eq!(common_point(&history, 150, 80, 1), 80);
        // The deposed primary wrote 1..=120 in epoch 1: 101..=120 diverge.
        assert_eq!(common_point(&history, 150, 120, 1), 100);
        // A replica that followed us into epoch 2.
        assert_eq!(common_point(&history, 150, 140, 2), 140);
        // A replica ahead of us in our own epoch cannot be; it agrees up to our end.
        assert_eq!(common_point(&history, 150, 160, 2), 150);
        assert_eq!(common_point(&history, 150, 0, 0), 0);
        assert_eq!(common_point(&[(1, 1)], 10, 10, 1), 10);
    }
}
