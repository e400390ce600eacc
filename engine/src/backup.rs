//! Online backups: a checkpoint of every shard plus the manifest and any other files kept
//! beside the shards, and restoring one into an empty data dir.
//!
//! A checkpoint has the layout of a data dir, so restoring is a copy and the restored dir
//! opens like any other. Each shard's checkpoint is consistent on its own (RocksDB flushes and
//! links its files at one sequence number); shards are taken one after another, so a write
//! that spans shards (the two sides of a follow, a fan-out) may be in one and not the other,
//! which the engine already tolerates after a crash.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::datadir::{read_manifest, MANIFEST};
use crate::durable::{create_dir_synced, sync_dir};
use crate::error::{Error, Result};
use crate::node::{Inner, Node, NodeConfig, OpenMode};

/// The result of a checkpoint or a restore.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BackupReport {
    /// The directory written.
    pub dir: String,
    /// Shards copied.
    pub shards: usize,
    /// Files copied one by one: for a checkpoint the manifest and the side files kept beside
    /// the shards (RocksDB writes the shards' own files); for a restore every file.
    pub copied_files: usize,
    /// Image files hard-linked into a checkpoint rather than copied (they are immutable;
    /// a checkpoint on another file system copies them).
    #[serde(default)]
    pub linked_files: usize,
    /// Bytes of all files in the directory written.
    pub bytes: u64,
    /// Wall time taken.
    pub millis: u64,
}

fn shard_dir(root: &Path, index: usize) -> PathBuf {
    root.join("shards").join(format!("{index:03}"))
}

/// Refuses a target that holds anything, so a backup never mixes with other files.
fn check_empty_target(dir: &Path) -> Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::invalid(
                    "dir",
                    format!("{} is not empty", dir.display()),
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Files placed by [`copy_tree`].
#[derive(Default)]
struct Placed {
    copied: usize,
    linked: usize,
}

/// Copies every file under `from` into `to` (same relative paths), skipping paths for which
/// `skip` is true and hard-linking those for which `link` is (copying them if the link
/// fails, as across file systems). Durable when it returns: each file copied and each
/// directory filled is fsynced (`to` itself is the caller's).
fn copy_tree(
    from: &Path,
    to: &Path,
    skip: &dyn Fn(&Path) -> bool,
    link: &dyn Fn(&Path) -> bool,
) -> Result<Placed> {
    let mut placed = Placed::default();
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let path = entry.path();
        if skip(&path) {
            continue;
        }
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            std::fs::create_dir_all(&target)?;
            let inner = copy_tree(&path, &target, skip, link)?;
            sync_dir(&target)?;
            placed.copied += inner.copied;
            placed.linked += inner.linked;
        } else if kind.is_file() {
            if link(&path) && std::fs::hard_link(&path, &target).is_ok() {
                placed.linked += 1;
                continue;
            }
            std::fs::copy(&path, &target)?;
            std::fs::File::open(&target)?.sync_all()?;
            placed.copied += 1;
        }
    }
    Ok(placed)
}

fn tree_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            tree_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

impl Inner {
    /// Writes a checkpoint of the node to `dir` (which must be missing or empty) while it
    /// keeps serving: per shard a RocksDB checkpoint (memtables flushed, SST files hard-linked
    /// when `dir` is on the same file system), then every other file of the data dir: the
    /// manifest and index files copied, the images under `media/` hard-linked (copied when
    /// `dir` is on another file system). Durable when it returns: every file and directory
    /// written is fsynced.
    pub fn checkpoint(&self, dir: &Path) -> Result<BackupReport> {
        let started = Instant::now();
        check_empty_target(dir)?;
        // Fresh index files make the restored node's replay short; an older one would
        // still be correct, since a node replays the tweets past its index's high water.
        self.save_indexes()?;
        create_dir_synced(&dir.join("shards"))?;
        for shard in self.placement.local() {
            shard.checkpoint(&shard_dir(dir, shard.index()))?;
        }
        sync_dir(&dir.join("shards"))?;
        // Everything else in the data dir is copied as it is: the manifest and files that
        // other parts of the node keep beside the shards (e.g. per-shard index files).
        let data = self.config.data_dir.clone();
        let dir_abs = std::fs::canonicalize(dir)?;
        let held = self.placement.local_ids();
        let count = held.len();
        let skip = |path: &Path| {
            let is_shard = path.parent() == Some(data.join("shards").as_path())
                && held.iter().any(|&i| path == shard_dir(&data, i));
            let is_target = std::fs::canonicalize(path).is_ok_and(|p| p == dir_abs);
            let is_temp = path.extension().is_some_and(|e| e == "tmp")
                || path == data.join("media").join("tmp");
            is_shard || is_target || is_temp
        };
        // Image files never change once written (a new image is a new file), so the
        // checkpoint shares them.
        let media = data.join("media");
        let placed = copy_tree(&data, dir, &skip, &|path| path.starts_with(&media))?;
        sync_dir(dir)?;
        let report = BackupReport {
            dir: dir.display().to_string(),
            shards: count,
            copied_files: placed.copied,
            linked_files: placed.linked,
            bytes: tree_bytes(dir)?,
            millis: started.elapsed().as_millis() as u64,
        };
        tracing::info!(dir = %dir.display(), bytes = report.bytes, ms = report.millis, "checkpoint written");
        Ok(report)
    }
}

/// Restores a checkpoint into `target` (missing or empty): copies it (no hard links, so the
/// backup stays as it was) and opens the result once, read-only, to prove it is a working
/// data dir. The restored dir keeps the role recorded in the checkpoint: a replica's
/// checkpoint restores as a replica (start it with `--replica-of`, or promote it).
pub fn restore(checkpoint: &Path, target: &Path) -> Result<BackupReport> {
    let started = Instant::now();
    if !checkpoint.join(MANIFEST).is_file() {
        return Err(Error::invalid(
            "checkpoint",
            format!(
                "{} is not a Chirp checkpoint (no {MANIFEST})",
                checkpoint.display()
            ),
        ));
    }
    let shards = read_manifest(checkpoint)?
        .map(|m| m.shards)
        .ok_or_else(|| {
            Error::invalid(
                "checkpoint",
                format!("{} has no {MANIFEST}", checkpoint.display()),
            )
        })?;
    for i in 0..shards {
        if !shard_dir(checkpoint, i).is_dir() {
            return Err(Error::invalid(
                "checkpoint",
                format!("{} lacks shard {i}", checkpoint.display()),
            ));
        }
    }
    check_empty_target(target)?;
    create_dir_synced(target)?;
    let placed = copy_tree(checkpoint, target, &|_| false, &|_| false)?;
    sync_dir(target)?;
    let mut config = NodeConfig::new(target);
    config.create = false;
    config.block_cache_bytes = 8 << 20;
    // Inspect: a replica's outbox holds its primary's jobs, which must not run here.
    config.mode = OpenMode::Inspect;
    Node::open(config)?.close()?;
    Ok(BackupReport {
        dir: target.display().to_string(),
        shards,
        copied_files: placed.copied,
        linked_files: 0,
        bytes: tree_bytes(target)?,
        millis: started.elapsed().as_millis() as u64,
    })
}
