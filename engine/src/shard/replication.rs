//! What replication needs from a shard beyond logged writes: applying shipped entries, the
//! epoch and its history, trimming the oplog, checkpoints and replacing the shard's files with
//! one. None of these writes is logged: they are local to each copy, like `meta`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{OnceLock, RwLock};

use rocksdb::{IteratorMode, WriteBatch, WriteOptions};
use sha2::{Digest, Sha256};

use super::{add_ops, cf_of, lock, open_db, Shard};
use crate::batch::Entry;
use crate::durable::sync_parent;
use crate::error::{Error, Result};
use crate::homecache::FeedVersions;
use crate::keys::{self, CF_META, CF_OPLOG};

type CommitHook = Box<dyn Fn(usize, u64) + Send + Sync>;

/// State every shard of a node shares: who the primary is, who to tell about commits, and
/// whether a cluster node holds its lease. (Whether a shard takes writes is the shard's own
/// gate.)
pub struct ShardShared {
    primary: RwLock<String>,
    on_commit: OnceLock<CommitHook>,
    /// On a cluster node, whether its registration is known to be alive (asked at each use,
    /// on the monotonic clock): while it may have lapsed the node cannot tell whether it is
    /// still the primary of its shards, so they neither take writes nor answer reads. None
    /// on a standalone node.
    lease: OnceLock<LeaseCheck>,
    /// Versions of what home pages are built from, moved by every commit and apply.
    pub(crate) versions: FeedVersions,
}

/// A cluster node's lease check (see [`ShardShared::set_lease_check`]).
pub type LeaseCheck = Box<dyn Fn() -> bool + Send + Sync>;

/// Why a primary copy refuses while its node's lease may have lapsed.
const LEASE_LAPSED: &str =
    "this node's cluster lease may have lapsed, so it cannot tell whether it is still the shard's primary; retry shortly";

impl Default for ShardShared {
    fn default() -> Self {
        Self::new()
    }
}

impl ShardShared {
    /// Shared state of a node's shards.
    pub fn new() -> Self {
        ShardShared {
            primary: RwLock::new(String::new()),
            on_commit: OnceLock::new(),
            lease: OnceLock::new(),
            versions: FeedVersions::new(),
        }
    }

    /// Whether the node holds its cluster lease (always on a standalone node).
    pub fn lease_held(&self) -> bool {
        self.lease.get().is_none_or(|held| held())
    }

    /// Installs the check of the node's cluster lease; only the first call takes effect.
    pub fn set_lease_check(&self, held: LeaseCheck) {
        let _ = self.lease.set(held);
    }

    /// Refuses (503) while the lease may have lapsed.
    pub fn check_lease(&self) -> Result<()> {
        if self.lease_held() {
            Ok(())
        } else {
            Err(Error::Unavailable(LEASE_LAPSED.into()))
        }
    }

    /// Where writes should go instead (empty if unknown).
    pub fn primary_hint(&self) -> String {
        self.primary.read().map(|p| p.clone()).unwrap_or_default()
    }

    /// Records where writes should go instead.
    pub fn set_primary_hint(&self, primary: &str) {
        if let Ok(mut p) = self.primary.write() {
            *p = primary.to_string();
        }
    }

    /// Installs the function called with (shard, last LSN) after every commit; only the first
    /// call takes effect.
    pub fn set_on_commit(&self, hook: CommitHook) {
        let _ = self.on_commit.set(hook);
    }

    pub(crate) fn committed(&self, shard: usize, lsn: u64) {
        if let Some(hook) = self.on_commit.get() {
            hook(shard, lsn);
        }
    }
}

thread_local! {
    static WRITES: RefCell<Option<BTreeMap<usize, u64>>> = const { RefCell::new(None) };
}

pub(crate) fn note_write(shard: usize, lsn: u64) {
    WRITES.with(|w| {
        if let Some(map) = w.borrow_mut().as_mut() {
            let e = map.entry(shard).or_insert(0);
            *e = (*e).max(lsn);
        }
    });
}

/// Runs `f` and returns, with its result, for each shard it wrote, an LSN at or above its
/// last write there: what a sync-mode acknowledgement must see replicated.
pub fn track_writes<T>(f: impl FnOnce() -> T) -> (T, Vec<(usize, u64)>) {
    let outer = WRITES.with(|w| w.borrow_mut().replace(BTreeMap::new()));
    let out = f();
    let seen = WRITES.with(|w| std::mem::replace(&mut *w.borrow_mut(), outer));
    (out, seen.unwrap_or_default().into_iter().collect())
}

fn decode_history(raw: Option<Vec<u8>>) -> Result<Vec<(u64, u64)>> {
    let Some(raw) = raw else {
        return Ok(vec![(1, 1)]);
    };
    if raw.len() % 16 != 0 {
        return Err(Error::Corrupt("meta epochs is not a list of pairs".into()));
    }
    Ok(raw
        .chunks_exact(16)
        .filter_map(|c| Some((keys::decode_id(&c[..8])?, keys::decode_id(&c[8..])?)))
        .collect())
}

fn encode_history(history: &[(u64, u64)]) -> Vec<u8> {
    history
        .iter()
        .flat_map(|(e, l)| e.to_be_bytes().into_iter().chain(l.to_be_bytes()))
        .collect()
}

impl Shard {
    /// Applies entries shipped from the primary, in one synced write with the entries
    /// themselves. They must continue the log exactly; a gap or a repeat is refused.
    pub fn apply_entries(&self, raws: &[Vec<u8>]) -> Result<Vec<Entry>> {
        let mut log = lock(&self.log);
        if let Some(why) = &log.stopped {
            return Err(Error::Storage(format!(
                "shard {} stopped taking writes after a failed write ({why}); restart the node",
                self.index
            )));
        }
        let mut history = None;
        let mut epoch = log.epoch;
        let db = self.db()?;
        let oplog = cf_of(&db, CF_OPLOG)?;
        let mut wb = WriteBatch::default();
        let mut entries = Vec::with_capacity(raws.len());
        let mut next = log.last_lsn + 1;
        for raw in raws {
            let entry = Entry::decode(raw)?;
            if entry.lsn != next {
                return Err(Error::Corrupt(format!(
                    "oplog gap on shard {}: have {}, got {}",
                    self.index,
                    next - 1,
                    entry.lsn
                )));
            }
            if entry.epoch > epoch {
                // The primary's epoch moved on (a promotion): follow it, and remember where
                // the new epoch starts so divergence can be found later.
                let h = match history.take() {
                    Some(h) => h,
                    None => self.epoch_history()?,
                };
                let mut h: Vec<(u64, u64)> = h;
                h.push((entry.epoch, entry.lsn));
                history = Some(h);
                epoch = entry.epoch;
            }
            add_ops(&db, &mut wb, &entry.ops)?;
            wb.put_cf(oplog, keys::id_key(entry.lsn), raw);
            next += 1;
            entries.push(entry);
        }
        if let Some(h) = &history {
            let meta = cf_of(&db, CF_META)?;
            wb.put_cf(meta, keys::META_EPOCH, epoch.to_be_bytes());
            wb.put_cf(meta, keys::META_EPOCHS, encode_history(h));
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(self.sync_writes);
        let written = (|| -> Result<()> {
            fail::fail_point!("shard::apply::write", |_| Err(Error::Storage(
                "failpoint shard::apply::write".into()
            )));
            db.write_opt(wb, &opts)?;
            Ok(())
        })();
        if let Err(e) = written {
            log.stopped = Some(std::sync::Arc::from(e.to_string()));
            return Err(e);
        }
        log.last_lsn = next - 1;
        log.epoch = epoch;
        for entry in &entries {
            self.opts.shared.versions.note(&entry.ops);
        }
        self.opts.shared.committed(self.index, log.last_lsn);
        Ok(entries)
    }

    /// Applies one shipped entry (see [`Shard::apply_entries`]).
    pub fn apply_entry(&self, raw: &[u8]) -> Result<Entry> {
        let mut entries = self.apply_entries(&[raw.to_vec()])?;
        entries
            .pop()
            .ok_or_else(|| Error::Corrupt("no entry applied".into()))
    }

    /// The epochs this copy has seen: (epoch, first LSN written in it), oldest first.
    pub fn epoch_history(&self) -> Result<Vec<(u64, u64)>> {
        decode_history(self.get(CF_META, keys::META_EPOCHS)?)
    }

    /// Starts a new epoch (on promotion): later entries carry it. Returns it.
    pub fn raise_epoch(&self) -> Result<u64> {
        self.raise_epoch_to(0)
    }

    /// Starts a new epoch of at least `at_least` (and above every epoch this copy has seen):
    /// a cluster's copies take the epoch the map gives their promotion, which the map gives
    /// once, so two promotions never write under the same epoch. Returns it.
    pub fn raise_epoch_to(&self, at_least: u64) -> Result<u64> {
        let mut log = lock(&self.log);
        let mut history = self.epoch_history()?;
        let epoch = (log.epoch.max(history.last().map_or(0, |h| h.0)) + 1).max(at_least);
        history.push((epoch, log.last_lsn + 1));
        let db = self.db()?;
        let meta = cf_of(&db, CF_META)?;
        let mut wb = WriteBatch::default();
        wb.put_cf(meta, keys::META_EPOCH, epoch.to_be_bytes());
        wb.put_cf(meta, keys::META_EPOCHS, encode_history(&history));
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        db.write_opt(wb, &opts)?;
        log.epoch = epoch;
        Ok(epoch)
    }

    /// The epoch of the entry at `lsn`, if the oplog holds it.
    pub fn entry_epoch(&self, lsn: u64) -> Result<Option<u64>> {
        match self.get(CF_OPLOG, &keys::id_key(lsn))? {
            Some(raw) => Ok(Some(Entry::decode(&raw)?.epoch)),
            None => Ok(None),
        }
    }

    /// The oldest LSN the oplog still holds (0 if it is empty).
    pub fn oldest_lsn(&self) -> Result<u64> {
        let db = self.db()?;
        let first = db
            .iterator_cf(cf_of(&db, CF_OPLOG)?, IteratorMode::Start)
            .next();
        match first {
            Some(r) => Ok(keys::decode_id(&r?.0).unwrap_or(0)),
            None => Ok(0),
        }
    }

    /// Drops oplog entries below `below`, always keeping the last entry (the log position is
    /// read from it at start). A raw range delete, not a logged batch: each copy trims its own.
    pub fn trim_oplog(&self, below: u64) -> Result<()> {
        let log = lock(&self.log);
        let below = below.min(log.last_lsn);
        if below <= 1 {
            return Ok(());
        }
        let db = self.db()?;
        let mut wb = WriteBatch::default();
        wb.delete_range_cf(cf_of(&db, CF_OPLOG)?, keys::id_key(0), keys::id_key(below));
        db.write(wb)?;
        Ok(())
    }

    /// Replaces the shard's files with the checkpoint in `staged` and reopens it. The staged
    /// copy is checked first (it must open and hold this shard), so a bad checkpoint leaves the
    /// shard as it was. Writes and applies wait on the log lock; reads fail with
    /// [`Error::Unavailable`] while the files are swapped instead of blocking their thread.
    pub fn replace_with(&self, staged: &Path) -> Result<()> {
        self.check_staged(staged)?;
        let mut log = lock(&self.log);
        let old = self.path.with_extension("old");
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        {
            let mut slot = self.db.write().unwrap_or_else(|p| p.into_inner());
            drop(slot.take());
            match self.swap_files(staged, &old) {
                Ok(db) => *slot = Some(db),
                Err(e) => {
                    // The previous files are back in place (or were never moved): reopen them
                    // so the node keeps what it had.
                    *slot = Some(open_db(&self.path, &self.opts, false)?);
                    return Err(e);
                }
            }
        }
        self.opts.shared.versions.bump_all();
        if let Err(e) = std::fs::remove_dir_all(&old) {
            tracing::warn!(path = %old.display(), error = %e, "could not remove the replaced shard files");
        }
        self.load_position(&mut log)
    }

    /// Closes the shard's files and moves them to `to` (the map gave this copy away): waits
    /// for reads in flight, which later fail with [`Error::Unavailable`]; writes and applies
    /// wait on the log lock, and find the shard closed. The move is made durable (both parent
    /// directories synced). Nothing is deleted: an operator may still look at the old copy.
    pub(crate) fn close_and_move(&self, to: &Path) -> Result<()> {
        let _log = lock(&self.log);
        self.set_writable(false);
        let mut slot = self.db.write().unwrap_or_else(|p| p.into_inner());
        drop(slot.take());
        self.opts.shared.versions.bump_all();
        if let Some(parent) = to.parent() {
            crate::durable::create_dir_synced(parent)?;
        }
        std::fs::rename(&self.path, to)?;
        sync_parent(&self.path)?;
        sync_parent(to)?;
        Ok(())
    }

    /// Opens a closed shard's files again, made empty (its old files were moved away): the
    /// map gave this node a copy of the shard once more. The gate stays closed.
    pub(crate) fn reopen_empty(&self, count: usize) -> Result<()> {
        let mut log = lock(&self.log);
        {
            let mut slot = self.db.write().unwrap_or_else(|p| p.into_inner());
            if slot.is_some() {
                return Err(Error::invalid(
                    "shard",
                    format!("shard {} is open", self.index),
                ));
            }
            *slot = Some(open_db(&self.path, &self.opts, true)?);
            self.opts.shared.versions.bump_all();
        }
        sync_parent(&self.path)?;
        log.last_lsn = 0;
        log.epoch = 1;
        log.stopped = None;
        self.check_meta(count, true)?;
        self.load_position(&mut log)
    }

    /// Moves the live files aside and the staged ones in, and opens them. On failure the live
    /// files are put back where they were.
    fn swap_files(&self, staged: &Path, old: &Path) -> Result<rocksdb::DB> {
        std::fs::rename(&self.path, old)?;
        let moved_in = std::fs::rename(staged, &self.path)
            .map_err(Error::from)
            .and_then(|()| {
                fail::fail_point!("shard::swap::open", |_| Err(Error::Storage(
                    "failpoint shard::swap::open".into()
                )));
                open_db(&self.path, &self.opts, false)
            });
        match moved_in {
            Ok(db) => {
                sync_parent(&self.path)?;
                Ok(db)
            }
            Err(e) => {
                if self.path.exists() {
                    std::fs::rename(&self.path, staged)?;
                }
                std::fs::rename(old, &self.path)?;
                Err(e)
            }
        }
    }

    /// Checks that a staged checkpoint opens and holds this shard of the same count.
    fn check_staged(&self, staged: &Path) -> Result<()> {
        let db = open_db(staged, &self.opts, false)?;
        let meta = cf_of(&db, CF_META)?;
        let read = |key: &[u8]| -> Result<Option<Vec<u8>>> { Ok(db.get_cf(meta, key)?) };
        let ours = |key: &[u8]| self.get(CF_META, key);
        for key in [
            keys::META_SCHEMA_VERSION,
            keys::META_SHARD_INDEX,
            keys::META_SHARD_COUNT,
        ] {
            let (theirs, mine) = (read(key)?, ours(key)?);
            if theirs != mine {
                return Err(Error::Corrupt(format!(
                    "the checkpoint for shard {} does not match it: meta {:?} is {theirs:?}, \
                     here {mine:?}",
                    self.index,
                    String::from_utf8_lossy(key)
                )));
            }
        }
        Ok(())
    }

    /// SHA-256 of each column family except `meta`: equal digests mean equal contents. The
    /// oplog counts from LSN `oplog_from` on, since each copy trims its own.
    pub fn digest(&self, oplog_from: u64) -> Result<Vec<(&'static str, String)>> {
        let db = self.db()?;
        let mut out = Vec::new();
        for name in keys::ALL_CFS.iter().filter(|n| **n != CF_META) {
            let mut h = Sha256::new();
            let from = if *name == CF_OPLOG { oplog_from } else { 0 };
            let start = keys::id_key(from);
            let mode = IteratorMode::From(&start, rocksdb::Direction::Forward);
            // Pair column families have a prefix extractor: without total-order seek a full
            // scan may skip keys depending on how the files happen to be laid out.
            let mut ro = rocksdb::ReadOptions::default();
            ro.set_total_order_seek(true);
            for item in db.iterator_cf_opt(cf_of(&db, name)?, ro, mode) {
                let (k, v) = item?;
                h.update((k.len() as u32).to_be_bytes());
                h.update(&k);
                h.update((v.len() as u32).to_be_bytes());
                h.update(&v);
            }
            let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
            out.push((*name, hex));
        }
        Ok(out)
    }
}
