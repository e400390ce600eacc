//! Bootstrap from a checkpoint streamed over the replication stream: the primary makes a
//! RocksDB checkpoint of the shard (hard links, consistent), sends each file in chunks and
//! deletes it; the replica writes the files to a staging directory beside the shard and has
//! the engine swap them in and reopen the shard. The replica then tails the oplog from the
//! checkpoint's last LSN.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use std::io::Write;

use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::link::{self, FrameReader};
use crate::Replication;

const CHUNK: usize = 1 << 20;
static NEXT_CHECKPOINT: AtomicU64 = AtomicU64::new(0);

/// Removes a directory when dropped (the primary's temporary checkpoint).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Makes a checkpoint of `shard` and streams it.
pub(crate) async fn send_checkpoint(
    repl: &Arc<Replication>,
    shard: usize,
    send: &mut quinn::SendStream,
) -> Result<()> {
    let dir = repl.config.data_dir.join("checkpoints").join(format!(
        "{shard:03}-{}-{}",
        std::process::id(),
        NEXT_CHECKPOINT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(dir.parent().unwrap_or(Path::new(".")))?;
    let guard = TempDir(dir.clone());
    let node = Arc::clone(&repl.node);
    let files = tokio::task::spawn_blocking(move || -> Result<Vec<(String, PathBuf)>> {
        node.checkpoint_shard(shard, &dir)?;
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                files.push((
                    entry.file_name().to_string_lossy().into_owned(),
                    entry.path(),
                ));
            }
        }
        Ok(files)
    })
    .await
    .map_err(|e| Error::Connection(e.to_string()))??;
    let mut total = 0u64;
    for (name, path) in &files {
        let mut file = std::fs::File::open(path)?;
        let mut offset = 0u64;
        loop {
            let mut data = vec![0; CHUNK];
            let n = file.read(&mut data)?;
            data.truncate(n);
            let frame = Frame::CheckpointChunk {
                shard: shard as u32,
                file: name.clone(),
                offset,
                data,
                last: false,
            };
            link::send(send, &frame).await?;
            offset += n as u64;
            if n == 0 {
                break;
            }
        }
        total += offset;
    }
    link::send(
        send,
        &Frame::CheckpointChunk {
            shard: shard as u32,
            file: String::new(),
            offset: 0,
            data: Vec::new(),
            last: true,
        },
    )
    .await?;
    tracing::info!(shard, files = files.len(), bytes = total, "checkpoint sent");
    drop(guard);
    Ok(())
}

fn safe_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\'])
}

/// Asks for a checkpoint of `shard`, receives it and installs it.
pub(crate) async fn receive_checkpoint(
    repl: &Arc<Replication>,
    shard: usize,
    send: &mut quinn::SendStream,
    recv: &mut FrameReader,
) -> Result<()> {
    link::send(
        send,
        &Frame::Snapshot {
            shard: shard as u32,
        },
    )
    .await?;
    let staged = repl
        .config
        .data_dir
        .join("shards")
        .join(format!("{shard:03}.incoming"));
    if staged.exists() {
        std::fs::remove_dir_all(&staged)?;
    }
    std::fs::create_dir_all(&staged)?;
    // Plain blocking writes: a chunk is 1 MiB and bootstrap is rare.
    let mut open: Option<(String, std::fs::File, u64)> = None;
    let mut bytes = 0u64;
    repl.shards[shard].follow_update(|f| f.checkpoint_bytes = 0);
    loop {
        match link::refused(recv.next().await?)? {
            Frame::CheckpointChunk { last: true, .. } => break,
            Frame::CheckpointChunk {
                file, offset, data, ..
            } => {
                if !safe_name(&file) {
                    return Err(Error::Protocol(format!(
                        "bad checkpoint file name {file:?}"
                    )));
                }
                if open.as_ref().map(|(n, _, _)| n != &file).unwrap_or(true) {
                    if let Some((_, f, _)) = open.take() {
                        f.sync_all()?;
                    }
                    let f = std::fs::File::create(staged.join(&file))?;
                    open = Some((file.clone(), f, 0));
                }
                if let Some((_, f, written)) = open.as_mut() {
                    if *written != offset {
                        return Err(Error::Protocol(format!(
                            "checkpoint file {file}: chunk at {offset}, expected {written}"
                        )));
                    }
                    f.write_all(&data)?;
                    *written += data.len() as u64;
                    bytes += data.len() as u64;
                    repl.shards[shard].follow_update(|f| f.checkpoint_bytes = bytes);
                }
            }
            other => {
                return Err(Error::Protocol(format!(
                    "expected a checkpoint chunk, got {other:?}"
                )))
            }
        }
    }
    if let Some((_, f, _)) = open.take() {
        f.sync_all()?;
    }
    let node = Arc::clone(&repl.node);
    let dir = staged.clone();
    let guard = Arc::clone(&repl.shards[shard].apply).lock_owned().await;
    tokio::task::spawn_blocking(move || {
        let r = node.install_checkpoint(shard, &dir);
        drop(guard);
        r
    })
    .await
    .map_err(|e| Error::Connection(e.to_string()))??;
    let pos = repl.node.log_position(shard)?;
    tracing::info!(
        shard,
        bytes,
        last_lsn = pos.last_lsn,
        epoch = pos.epoch,
        "installed a checkpoint from the primary"
    );
    // The checkpoint brought rows, not the image files they name: fetched next.
    repl.shards[shard].follow_update(|f| {
        f.bootstraps += 1;
        f.files_checked = false;
    });
    Ok(())
}
