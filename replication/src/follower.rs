//! The replica side: one task per shard pulls entries from the primary over its own stream,
//! applies them (entry and data in one synced write, so the applied LSN is the shard's last
//! LSN) and acknowledges. On any error it reconnects and resumes from what it has applied;
//! when the primary has trimmed what it needs, or its history diverged, it bootstraps from a
//! checkpoint.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Mutex};

use crate::error::{Error, Result};
use crate::frame::{ErrorCode, Frame, Role};
use crate::link::{self, FrameReader};
use crate::{bootstrap, Replication};

/// How much one Pull asks for.
const PULL_BYTES: u32 = 4 << 20;
/// How long the primary may hold a Pull with nothing new.
const PULL_WAIT_MS: u32 = 1000;

/// One QUIC connection to the primary, shared by the shard tasks and remade when it drops.
pub(crate) struct Upstream {
    addr: SocketAddr,
    conn: Mutex<Option<quinn::Connection>>,
}

impl Upstream {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Upstream {
            addr,
            conn: Mutex::new(None),
        }
    }

    pub(crate) async fn get(&self, endpoint: &quinn::Endpoint) -> Result<quinn::Connection> {
        let mut conn = self.conn.lock().await;
        if let Some(c) = conn.as_ref() {
            if c.close_reason().is_none() {
                return Ok(c.clone());
            }
        }
        // The primary's certificate names 127.0.0.1 and localhost besides its node name;
        // we check it against the address we were given.
        let name = self.addr.ip().to_string();
        let c = tokio::time::timeout(Duration::from_secs(5), endpoint.connect(self.addr, &name)?)
            .await
            .map_err(|_| Error::Connection(format!("connecting to {} timed out", self.addr)))??;
        *conn = Some(c.clone());
        Ok(c)
    }
}

/// Follows one shard until `stop` turns true.
pub(crate) async fn run(
    repl: Arc<Replication>,
    upstream: Arc<Upstream>,
    shard: usize,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    while !*stop.borrow() {
        let started = Instant::now();
        let mut inner_stop = stop.clone();
        let result = tokio::select! {
            r = follow(&repl, &upstream, shard, &mut inner_stop) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        repl.shards[shard].follow_update(|f| f.connected = false);
        match result {
            Ok(()) => return,
            Err(Error::Apply(why)) => {
                // Retrying would fail the same way (or, worse, skip past the entry): stop this
                // shard loudly and leave it to an operator (status shows why).
                tracing::error!(
                    shard,
                    error = %why,
                    "applying replicated entries failed; this shard stops following"
                );
                repl.shards[shard].follow_update(|f| f.stopped = Some(why));
                return;
            }
            Err(e) => tracing::warn!(shard, error = %e, "replication stream failed; reconnecting"),
        }
        if started.elapsed() > Duration::from_secs(5) {
            backoff = Duration::from_millis(100);
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

async fn follow(
    repl: &Arc<Replication>,
    upstream: &Upstream,
    shard: usize,
    stop: &mut watch::Receiver<bool>,
) -> Result<()> {
    let conn = upstream.get(&repl.endpoint).await?;
    let (mut send, recv) = conn.open_bi().await?;
    let mut recv = FrameReader::new(recv);
    let node = &repl.node;
    let pos = node.log_position(shard)?;
    let last_epoch = node.entry_epoch(shard, pos.last_lsn)?.unwrap_or(0);
    link::send(
        &mut send,
        &Frame::Hello {
            node: repl.config.node_name.clone(),
            cluster: repl.config.cluster.clone(),
            shard: shard as u32,
            role: Role::Replica,
            epoch: pos.epoch,
            last_lsn: pos.last_lsn,
            last_epoch,
        },
    )
    .await?;
    let Frame::Welcome {
        epoch: their_epoch,
        last_lsn: primary_last,
        oldest_lsn,
        common_lsn,
        api,
        ..
    } = link::refused(recv.next().await?)?
    else {
        return Err(Error::Protocol("expected Welcome".into()));
    };
    below_the_map(repl, shard, their_epoch)?;
    node.shared().set_primary_hint(&api);
    repl.shards[shard].follow_update(|f| {
        f.connected = true;
        f.primary_last_lsn = primary_last;
    });
    if common_lsn < pos.last_lsn {
        dump_divergent(repl, shard, common_lsn)?;
        bootstrap::receive_checkpoint(repl, shard, &mut send, &mut recv).await?;
    } else if pos.last_lsn < primary_last && oldest_lsn > pos.last_lsn + 1 {
        tracing::info!(
            shard,
            have = pos.last_lsn,
            oldest_lsn,
            "primary trimmed what we need; bootstrapping"
        );
        bootstrap::receive_checkpoint(repl, shard, &mut send, &mut recv).await?;
    }
    fetch_shard_blobs(repl, &conn, shard).await?;
    let mut applied = node.log_position(shard)?.last_lsn;
    link::send(
        &mut send,
        &Frame::Ack {
            shard: shard as u32,
            applied_lsn: applied,
        },
    )
    .await?;
    while !*stop.borrow() {
        link::send(
            &mut send,
            &Frame::Pull {
                shard: shard as u32,
                epoch: node.log_position(shard)?.epoch,
                after_lsn: applied,
                max_bytes: PULL_BYTES,
                wait_ms: PULL_WAIT_MS,
            },
        )
        .await?;
        let (entries, primary_last) = match recv.next().await? {
            Frame::Entries {
                epoch,
                entries,
                primary_last_lsn,
                ..
            } => {
                below_the_map(repl, shard, epoch)?;
                (entries, primary_last_lsn)
            }
            Frame::Error {
                code: ErrorCode::Trimmed,
                message,
            } => {
                tracing::info!(
                    shard,
                    message,
                    "fell behind the primary's oplog; bootstrapping"
                );
                bootstrap::receive_checkpoint(repl, shard, &mut send, &mut recv).await?;
                fetch_shard_blobs(repl, &conn, shard).await?;
                applied = node.log_position(shard)?.last_lsn;
                continue;
            }
            other => {
                link::refused(other)?;
                return Err(Error::Protocol("expected Entries".into()));
            }
        };
        repl.shards[shard].follow_update(|f| {
            f.primary_last_lsn = primary_last;
            if primary_last > applied && f.behind_since.is_none() {
                f.behind_since = Some(Instant::now());
            }
        });
        if !entries.is_empty() {
            let raws: Vec<Vec<u8>> = entries.into_iter().map(|(_, raw)| raw).collect();
            // The image files the batch's media rows name come first: acknowledging the
            // batch must mean holding them.
            let node = Arc::clone(&repl.node);
            let (missing, raws) = tokio::task::spawn_blocking(move || {
                let missing = node.blobs_missing_for(&raws);
                (missing, raws)
            })
            .await
            .map_err(|e| Error::Apply(format!("the blob check failed: {e}")))?;
            let missing = missing.map_err(|e| Error::Apply(e.to_string()))?;
            if !missing.is_empty() {
                crate::blobs::fetch(repl, &conn, missing).await?;
            }
            let node = Arc::clone(&repl.node);
            // The apply guard goes with the write: if this task is cancelled (promotion), the
            // write still finishes, and promotion waits for the guard before raising epochs.
            let guard = Arc::clone(&repl.shards[shard].apply).lock_owned().await;
            applied = tokio::task::spawn_blocking(move || {
                let r = node.apply_replicated_batch(shard, &raws);
                drop(guard);
                r
            })
            .await
            .map_err(|e| Error::Apply(format!("the apply task failed: {e}")))?
            .map_err(|e| Error::Apply(e.to_string()))?;
            link::send(
                &mut send,
                &Frame::Ack {
                    shard: shard as u32,
                    applied_lsn: applied,
                },
            )
            .await?;
        }
        repl.shards[shard].follow_update(|f| {
            if applied >= f.primary_last_lsn {
                f.behind_since = None;
            }
        });
    }
    Ok(())
}

/// Fetches every image file the copy's rows name that this node lacks, once per run of the
/// node and again after each checkpoint installed (a checkpoint brings rows, not files; a
/// copy made before files travelled may lack some).
async fn fetch_shard_blobs(
    repl: &Replication,
    conn: &quinn::Connection,
    shard: usize,
) -> Result<()> {
    if repl.shards[shard].follow().files_checked {
        return Ok(());
    }
    let node = Arc::clone(&repl.node);
    let missing = tokio::task::spawn_blocking(move || node.blobs_missing(shard))
        .await
        .map_err(|e| Error::Connection(e.to_string()))??;
    if !missing.is_empty() {
        tracing::info!(
            shard,
            files = missing.len(),
            "fetching the image files the copy's rows name"
        );
        crate::blobs::fetch(repl, conn, missing).await?;
    }
    repl.shards[shard].follow_update(|f| f.files_checked = true);
    Ok(())
}

/// Refuses a primary whose epoch is below the shard's highest epoch in the map: it was
/// replaced (and may not know it yet), so what it writes now must not be acknowledged by
/// this copy. The stream ends; the follower retries, and the map repoints it.
fn below_the_map(repl: &Replication, shard: usize, their_epoch: u64) -> Result<()> {
    let seen = repl.shards[shard].map_epoch();
    if their_epoch < seen {
        return Err(Error::StaleEpoch {
            theirs: their_epoch,
            seen,
        });
    }
    Ok(())
}

/// Writes this copy's entries after `common` (which the primary does not have) to
/// `DATA/divergent-<shard>-<epoch>.log` for an operator to inspect; they are never merged.
/// Format: for each entry, `u64 lsn | u32 length | raw oplog entry`, big-endian.
fn dump_divergent(repl: &Replication, shard: usize, common: u64) -> Result<()> {
    let node = &repl.node;
    let pos = node.log_position(shard)?;
    let entries = node.read_oplog(shard, common, usize::MAX)?;
    let path = repl
        .config
        .data_dir
        .join(format!("divergent-{shard:03}-{}.log", pos.epoch));
    let mut file = std::fs::File::create(&path)?;
    for (lsn, raw) in &entries {
        file.write_all(&lsn.to_be_bytes())?;
        file.write_all(&(raw.len() as u32).to_be_bytes())?;
        file.write_all(raw)?;
    }
    file.sync_all()?;
    tracing::error!(
        shard,
        common,
        our_last = pos.last_lsn,
        entries = entries.len(),
        path = %path.display(),
        "this copy diverged from the primary; its extra entries were dumped and it re-bootstraps"
    );
    Ok(())
}
