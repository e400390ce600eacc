//! One shard: a RocksDB instance with every column family of [`crate::keys`].

use std::cell::Cell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use rocksdb::checkpoint::Checkpoint;
use rocksdb::properties::{self, PropName};
use rocksdb::{
    BlockBasedOptions, BottommostLevelCompaction, Cache, ColumnFamily, ColumnFamilyDescriptor,
    CompactOptions, Direction, IngestExternalFileOptions, IteratorMode, MergeOperands, Options,
    ReadOptions, ReadTier, SliceTransform, WriteBatch, WriteOptions, DB,
};

use crate::batch::{encode_entry, Batch, Op, OpKind};
use crate::durable::sync_parent;
use crate::error::{Error, Result};
use crate::keys::{self, CF_META};

mod replication;
pub use replication::{track_writes, LeaseCheck, ShardShared};

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Settings shared by every shard of a node.
#[derive(Clone)]
pub struct ShardOptions {
    /// The block cache all shards share.
    pub block_cache: Cache,
    /// Fsync the WAL before acknowledging a write.
    pub sync_writes: bool,
    /// The primary hint and commit hook every shard of the node shares.
    pub shared: Arc<ShardShared>,
}

/// A shard's RocksDB instance.
pub struct Shard {
    /// None only while a checkpoint replaces the shard's files, or once the copy was dropped
    /// (see `replication.rs`).
    db: RwLock<Option<DB>>,
    index: usize,
    path: PathBuf,
    opts: ShardOptions,
    sync_writes: bool,
    queue: Mutex<Queue>,
    log: Mutex<LogState>,
    /// The write gate: open while this copy is the shard's primary. Closed at open; the
    /// node opens it once the shard's role is settled.
    writable: AtomicBool,
    /// Closed by [`Shard::close_gate`] for a handover: this copy's log is final and it
    /// still serves it (and reads) until the map names the new primary.
    fenced: AtomicBool,
}

/// Batches waiting to be committed, in arrival order.
#[derive(Default)]
struct Queue {
    pending: Vec<Pending>,
    next_ticket: u64,
}

struct Pending {
    ticket: u64,
    batch: Batch,
    sync: bool,
}

/// The commit leader's state: held while a group is written, so LSNs follow commit order.
struct LogState {
    last_lsn: u64,
    epoch: u64,
    /// Every ticket below this has been committed or has failed.
    decided: u64,
    /// The error of every failed ticket whose writer has not read it yet. Each writer removes
    /// its own entry, so this holds at most the tickets of groups still being woken.
    failed: HashMap<u64, Arc<str>>,
    /// Set when a RocksDB write failed: what reached the WAL is then unknown (an fsync that
    /// failed may have written some of it), so the shard takes no more writes until the node
    /// is restarted and recovers from the WAL.
    stopped: Option<Arc<str>>,
}

impl LogState {
    /// A writer's outcome, read once: the entry of a failed ticket is removed.
    fn take_outcome(&mut self, ticket: u64) -> Result<()> {
        match self.failed.remove(&ticket) {
            Some(e) => Err(Error::Storage(e.to_string())),
            None => Ok(()),
        }
    }
}

thread_local! {
    static CACHE_ONLY: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with this thread's shard reads restricted to memtables and the block cache: a
/// read that would have to wait for the disk fails at once with [`Error::WouldBlock`]. The
/// server runs reads this way on its runtime threads and redoes the rare miss on the
/// blocking pool, so a slow disk never stalls the threads that serve every connection.
pub fn cache_only<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            CACHE_ONLY.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CACHE_ONLY.with(|c| c.replace(true)));
    f()
}

/// Whether this thread runs inside [`cache_only`].
pub(crate) fn in_cache_only() -> bool {
    CACHE_ONLY.with(Cell::get)
}

/// Options of a whole-column-family walk. Pair column families have a prefix extractor, and
/// RocksDB then seeks in prefix mode unless told otherwise, where stepping past one owner's
/// keys into the next owner's is undefined: a full walk (verification, start-up scans) must
/// ask for total order or it can skip rows (pinned in `shard/tests.rs`).
fn scan_options() -> ReadOptions {
    let mut ro = ReadOptions::default();
    ro.set_total_order_seek(true);
    ro
}

/// Options of a request-path read: cache-only inside [`cache_only`].
fn read_options() -> ReadOptions {
    let mut ro = ReadOptions::default();
    if CACHE_ONLY.with(Cell::get) {
        ro.set_read_tier(ReadTier::BlockCache);
    }
    ro
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn add_merge(_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands) -> Option<Vec<u8>> {
    let mut total = existing.map(keys::decode_counter_value).unwrap_or(0);
    for op in operands {
        total = total.wrapping_add(keys::decode_counter_value(op));
    }
    Some(keys::counter_value(total).to_vec())
}

fn cf_options(name: &str, cache: &Cache) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_bloom_filter(10.0, false);
    table.set_cache_index_and_filter_blocks(true);
    // Large files (bulk imports make files of millions of keys) would otherwise have
    // multi-megabyte index and filter blocks that thrash the shared cache: partition them so
    // a lookup loads only the small partition it needs, and keep the top levels pinned.
    table.set_index_type(rocksdb::BlockBasedIndexType::TwoLevelIndexSearch);
    table.set_partition_filters(true);
    table.set_metadata_block_size(4096);
    table.set_pin_top_level_index_and_filter(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    let mut opts = Options::default();
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    if keys::PAIR_CFS.contains(&name) {
        // Pair keys are scanned by owner: bloom filters on the 8-byte owner prefix let a
        // prefix seek skip files that hold nothing for that owner.
        opts.set_prefix_extractor(SliceTransform::create_fixed_prefix(8));
    }
    if name == keys::CF_COUNTERS {
        opts.set_merge_operator_associative("chirp_add_i64", add_merge);
    }
    opts.set_block_based_table_factory(&table);
    opts
}

/// Read access to a shard's open RocksDB instance.
struct Db<'a>(RwLockReadGuard<'a, Option<DB>>);

impl std::ops::Deref for Db<'_> {
    type Target = DB;
    fn deref(&self) -> &DB {
        // `Shard::db` hands out a `Db` only after checking the instance is there.
        self.0.as_ref().expect("checked by Shard::db")
    }
}

fn cf_of<'a>(db: &'a DB, name: &str) -> Result<&'a ColumnFamily> {
    db.cf_handle(name)
        .ok_or_else(|| Error::Storage(format!("column family {name} missing")))
}

/// Opens a shard's RocksDB instance; `create` makes a missing one (only for a new shard).
fn open_db(path: &Path, opts: &ShardOptions, create: bool) -> Result<DB> {
    if !create && !path.join("CURRENT").is_file() {
        return Err(Error::Corrupt(format!(
            "{} is missing or holds no RocksDB files, yet the data dir's manifest names it; \
             restore the shard from a checkpoint (or a replica) instead of starting it empty",
            path.display()
        )));
    }
    let mut db_opts = Options::default();
    db_opts.create_if_missing(create);
    db_opts.create_missing_column_families(true);
    db_opts.set_max_background_jobs(2);
    db_opts.set_bytes_per_sync(1 << 20);
    let cfs = keys::ALL_CFS
        .iter()
        .map(|name| ColumnFamilyDescriptor::new(*name, cf_options(name, &opts.block_cache)));
    DB::open_cf_descriptors(&db_opts, path, cfs).map_err(|e| {
        let message = e.into_string();
        // RocksDB holds an flock on DIR/LOCK while a process has the shard open; a second
        // opener gets EAGAIN. That is how a tool learns that a node is running on the dir.
        if message.contains("LOCK") && message.contains("unavailable") {
            Error::Locked(path.display().to_string())
        } else {
            Error::Storage(message)
        }
    })
}

impl Shard {
    /// Opens shard `index` of `count` under `path`; `create` makes it when it is a new shard
    /// of a new data dir (an existing shard that is missing is an error, never made empty).
    pub fn open(
        path: &Path,
        index: usize,
        count: usize,
        create: bool,
        opts: &ShardOptions,
    ) -> Result<Shard> {
        recover_swap(path)?;
        let shard = Shard {
            db: RwLock::new(Some(open_db(path, opts, create)?)),
            index,
            path: path.to_path_buf(),
            opts: opts.clone(),
            sync_writes: opts.sync_writes,
            queue: Mutex::new(Queue::default()),
            writable: AtomicBool::new(false),
            fenced: AtomicBool::new(false),
            log: Mutex::new(LogState {
                last_lsn: 0,
                epoch: 1,
                decided: 0,
                failed: HashMap::new(),
                stopped: None,
            }),
        };
        shard.check_meta(count, create)?;
        let mut log = lock(&shard.log);
        shard.load_position(&mut log)?;
        drop(log);
        Ok(shard)
    }

    /// Whether this copy takes logged writes (it is the shard's primary).
    pub fn is_writable(&self) -> bool {
        self.writable.load(Ordering::SeqCst)
    }

    /// Opens or closes the write gate (ending a fence). Closing it does not wait for writes
    /// already past it: [`Shard::close_gate`] does.
    pub(crate) fn set_writable(&self, writable: bool) {
        self.writable.store(writable, Ordering::SeqCst);
        self.fenced.store(false, Ordering::SeqCst);
    }

    /// Whether this copy was the primary and is fenced for a handover: it takes no writes,
    /// its log is final, and it still serves that log and reads.
    pub fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::SeqCst)
    }

    /// Reads the log position (last LSN, epoch) from the open instance.
    fn load_position(&self, log: &mut LogState) -> Result<()> {
        log.last_lsn = self
            .last_key(keys::CF_OPLOG)?
            .and_then(|k| keys::decode_id(&k))
            .unwrap_or(0);
        log.epoch = match self.get(CF_META, keys::META_EPOCH)? {
            Some(v) => u64::from_be_bytes(
                v.as_slice()
                    .try_into()
                    .map_err(|_| Error::Corrupt("meta epoch is not a u64".into()))?,
            ),
            None => 1,
        };
        Ok(())
    }

    /// The open instance. While a checkpoint's files are swapped in (the only time the slot
    /// is write-locked or empty) this fails at once rather than blocking the caller's thread.
    fn db(&self) -> Result<Db<'_>> {
        let guard = match self.db.try_read() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Err(self.swapping()),
        };
        if guard.is_none() {
            return Err(self.swapping());
        }
        Ok(Db(guard))
    }

    fn swapping(&self) -> Error {
        Error::Unavailable(format!(
            "shard {}'s copy here is being replaced by a checkpoint or was given away",
            self.index
        ))
    }

    fn check_meta(&self, count: usize, create: bool) -> Result<()> {
        let read_u32 = |key: &[u8]| -> Result<Option<u32>> {
            match self.get(CF_META, key)? {
                None => Ok(None),
                Some(v) => v
                    .as_slice()
                    .try_into()
                    .map(|b| Some(u32::from_be_bytes(b)))
                    .map_err(|_| Error::Corrupt(format!("meta {key:?} is not a u32"))),
            }
        };
        match read_u32(keys::META_SCHEMA_VERSION)? {
            None if !create => {
                return Err(Error::Corrupt(format!(
                    "{} has no shard metadata, yet the data dir's manifest names it",
                    self.path.display()
                )))
            }
            None => {
                let mut batch = WriteBatch::default();
                let db = self.db()?;
                let meta = cf_of(&db, CF_META)?;
                batch.put_cf(
                    meta,
                    keys::META_SCHEMA_VERSION,
                    SCHEMA_VERSION.to_be_bytes(),
                );
                batch.put_cf(
                    meta,
                    keys::META_SHARD_INDEX,
                    (self.index as u32).to_be_bytes(),
                );
                batch.put_cf(meta, keys::META_SHARD_COUNT, (count as u32).to_be_bytes());
                // Shard metadata is local to each copy of the shard, so it is not logged.
                let mut opts = WriteOptions::default();
                opts.set_sync(true);
                db.write_opt(batch, &opts)?;
            }
            Some(SCHEMA_VERSION) => {
                let index = read_u32(keys::META_SHARD_INDEX)?;
                let stored = read_u32(keys::META_SHARD_COUNT)?;
                if index != Some(self.index as u32) || stored != Some(count as u32) {
                    return Err(Error::Corrupt(format!(
                        "{} holds shard {index:?} of {stored:?}, expected {} of {count}",
                        self.path.display(),
                        self.index
                    )));
                }
            }
            Some(v) => {
                return Err(Error::Corrupt(format!(
                    "{} has schema version {v}; this build reads {SCHEMA_VERSION}",
                    self.path.display()
                )))
            }
        }
        Ok(())
    }

    /// This shard's index within the node.
    pub fn index(&self) -> usize {
        self.index
    }

    /// A point read.
    pub fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let db = self.db()?;
        Ok(db.get_cf_opt(cf_of(&db, cf)?, key, &read_options())?)
    }

    /// Whether a key exists.
    pub fn contains(&self, cf: &str, key: &[u8]) -> Result<bool> {
        let db = self.db()?;
        let found = db
            .get_pinned_cf_opt(cf_of(&db, cf)?, key, &read_options())?
            .is_some();
        Ok(found)
    }

    /// Commits a batch atomically with its oplog entry; acknowledged once synced to the WAL
    /// unless the node runs in the relaxed (no-fsync) mode.
    pub fn write(&self, batch: Batch) -> Result<()> {
        self.commit(batch, self.sync_writes)
    }

    /// Commits a batch whose loss on a crash is harmless (it can be redone), without fsync.
    pub fn write_relaxed(&self, batch: Batch) -> Result<()> {
        self.commit(batch, false)
    }

    /// Group commit: every writer queues its batch, then takes the log lock; whoever gets it
    /// first writes every queued batch in one RocksDB write (one fsync), each with the next
    /// LSN, and the others find theirs already decided.
    fn commit(&self, batch: Batch, sync: bool) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        if let Some(op) = batch.ops().iter().find(|op| op.cf_name().is_empty()) {
            return Err(Error::Storage(format!(
                "write to unknown column family #{}",
                op.cf
            )));
        }
        let ticket = {
            let mut q = lock(&self.queue);
            // Checked under the queue lock, so `close_gate` knows every batch that passed.
            if !self.is_writable() {
                return Err(Error::NotPrimary(self.opts.shared.primary_hint()));
            }
            self.opts.shared.check_lease()?;
            fail::fail_point!("shard::commit::gate");
            let ticket = q.next_ticket;
            q.next_ticket += 1;
            q.pending.push(Pending {
                ticket,
                batch,
                sync,
            });
            ticket
        };
        let mut log = lock(&self.log);
        if ticket >= log.decided {
            self.write_pending(&mut log);
        }
        self.finish(&mut log, ticket)
    }

    /// Writes every queued batch as one group and decides each of their tickets. Called
    /// with the log lock held.
    fn write_pending(&self, log: &mut LogState) {
        let group = std::mem::take(&mut lock(&self.queue).pending);
        let Some(last) = group.last().map(|p| p.ticket) else {
            return;
        };
        // Every batch of the group gets the group's outcome, whatever step fails: nothing
        // below may return early.
        match self.write_group(log, &group) {
            Ok(lsn) => {
                log.last_lsn = lsn;
                for p in &group {
                    self.opts.shared.versions.note(p.batch.ops());
                }
                self.opts.shared.committed(self.index, lsn);
            }
            Err(e) => {
                let message: Arc<str> = Arc::from(e.to_string());
                for p in &group {
                    log.failed.insert(p.ticket, Arc::clone(&message));
                }
            }
        }
        log.decided = last + 1;
    }

    /// Closes the write gate and settles every write that got past it: those queued are
    /// written (or failed) now, so nothing is committed after this returns until the gate
    /// opens again. Returns the last LSN: everything this copy will ever have acknowledged
    /// at its current epoch. A planned handover waits for the new primary to hold it.
    pub(crate) fn close_gate(&self) -> u64 {
        {
            let _queue = lock(&self.queue);
            self.set_writable(false);
            self.fenced.store(true, Ordering::SeqCst);
        }
        let mut log = lock(&self.log);
        self.write_pending(&mut log);
        log.last_lsn
    }

    /// Writes a group of batches in one RocksDB write, each with the next LSN; returns the
    /// last LSN written. A failure of the write itself stops the shard (see `LogState`).
    fn write_group(&self, log: &mut LogState, group: &[Pending]) -> Result<u64> {
        if let Some(why) = &log.stopped {
            return Err(Error::Storage(format!(
                "shard {} stopped taking writes after a failed write ({why}); restart the node",
                self.index
            )));
        }
        let db = self.db()?;
        let oplog = cf_of(&db, keys::CF_OPLOG)?;
        let mut wb = WriteBatch::default();
        let mut lsn = log.last_lsn;
        let mut group_sync = false;
        for p in group {
            lsn += 1;
            group_sync |= p.sync;
            add_ops(&db, &mut wb, p.batch.ops())?;
            wb.put_cf(
                oplog,
                keys::id_key(lsn),
                encode_entry(log.epoch, lsn, p.batch.ops()),
            );
        }
        fail::fail_point!("shard::commit::prepare", |_| Err(Error::Storage(
            "failpoint shard::commit::prepare".into()
        )));
        let mut opts = WriteOptions::default();
        opts.set_sync(group_sync);
        let written = (|| -> Result<()> {
            fail::fail_point!("shard::commit::write", |_| Err(Error::Storage(
                "failpoint shard::commit::write".into()
            )));
            db.write_opt(wb, &opts)?;
            Ok(())
        })();
        if let Err(e) = written {
            tracing::error!(shard = self.index, error = %e, "a write failed; the shard stops taking writes");
            log.stopped = Some(Arc::from(e.to_string()));
            return Err(e);
        }
        Ok(lsn)
    }

    /// A writer's outcome; on success, notes for [`crate::track_writes`] that the request
    /// wrote this shard up to (at most) its current last LSN.
    fn finish(&self, log: &mut LogState, ticket: u64) -> Result<()> {
        log.take_outcome(ticket)?;
        replication::note_write(self.index, log.last_lsn);
        Ok(())
    }

    /// Fsyncs the WAL, making every write so far durable (after relaxed writes); a no-op in
    /// the relaxed mode, which never fsyncs.
    pub fn sync_wal(&self) -> Result<()> {
        fail::fail_point!("shard::sync_wal", |_| Err(Error::Storage(
            "failpoint shard::sync_wal".into()
        )));
        if self.sync_writes {
            self.db()?.flush_wal(true)?;
        }
        Ok(())
    }

    /// The LSN of the last committed entry (0 if none).
    pub fn last_lsn(&self) -> u64 {
        lock(&self.log).last_lsn
    }

    /// The epoch this shard writes its entries with.
    pub fn epoch(&self) -> u64 {
        lock(&self.log).epoch
    }

    /// Raw oplog entries with LSN `> after`, in order, up to about `max_bytes` (at least one).
    pub fn read_oplog(&self, after: u64, max_bytes: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let start = keys::id_key(after.saturating_add(1));
        let db = self.db()?;
        let iter = db.iterator_cf(
            cf_of(&db, keys::CF_OPLOG)?,
            IteratorMode::From(&start, Direction::Forward),
        );
        let mut out = Vec::new();
        let mut bytes = 0;
        for item in iter {
            let (k, v) = item?;
            let lsn = keys::decode_id(&k).ok_or_else(|| Error::Corrupt("oplog key".into()))?;
            bytes += v.len();
            out.push((lsn, v.to_vec()));
            if bytes >= max_bytes {
                break;
            }
        }
        Ok(out)
    }

    /// Items of `owner` in a pair column family, newest (largest item) first, with item
    /// `< before`, at most `limit`; each with its value.
    pub fn scan_pairs_rev(
        &self,
        cf: &str,
        owner: u64,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        if before == 0 || limit == 0 {
            return Ok(Vec::new());
        }
        let mut ro = read_options();
        ro.set_prefix_same_as_start(true);
        let start = keys::pair_key(owner, before - 1);
        let db = self.db()?;
        let iter = db.iterator_cf_opt(
            cf_of(&db, cf)?,
            ro,
            IteratorMode::From(&start, Direction::Reverse),
        );
        collect_pairs(iter, owner, limit)
    }

    /// Ids of an id-keyed column family, newest (largest) first, below `before`, at most
    /// `limit` (a request-path read: cache-only inside [`cache_only`]).
    pub fn ids_rev(&self, cf: &str, before: u64, limit: usize) -> Result<Vec<u64>> {
        if before == 0 || limit == 0 {
            return Ok(Vec::new());
        }
        let mut ro = read_options();
        ro.set_total_order_seek(true);
        let start = keys::id_key(before - 1);
        let db = self.db()?;
        let iter = db.iterator_cf_opt(
            cf_of(&db, cf)?,
            ro,
            IteratorMode::From(&start, Direction::Reverse),
        );
        let mut out = Vec::with_capacity(limit);
        for item in iter {
            let (k, _) = item?;
            if let Some(id) = keys::decode_id(&k) {
                out.push(id);
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Items of `owner` in a pair column family, ascending, with item `> after`, at most `limit`.
    pub fn scan_pairs(
        &self,
        cf: &str,
        owner: u64,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        let start = match after {
            Some(u64::MAX) => return Ok(Vec::new()),
            Some(a) => keys::pair_key(owner, a + 1),
            None => keys::pair_key(owner, 0),
        };
        let mut ro = read_options();
        ro.set_prefix_same_as_start(true);
        let db = self.db()?;
        let iter = db.iterator_cf_opt(
            cf_of(&db, cf)?,
            ro,
            IteratorMode::From(&start, Direction::Forward),
        );
        collect_pairs(iter, owner, limit)
    }

    /// Every key-value pair of a column family, in key order (for start-up recovery).
    pub fn scan_all(&self, cf: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let db = self.db()?;
        let out = db
            .iterator_cf_opt(cf_of(&db, cf)?, scan_options(), IteratorMode::Start)
            .map(|r| {
                r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(Error::from)
            })
            .collect();
        out
    }

    /// Every key-value pair whose key starts with `prefix`, in key order (a request-path read:
    /// cache-only inside [`cache_only`]).
    pub fn scan_prefix(&self, cf: &str, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let db = self.db()?;
        let iter = db.iterator_cf_opt(
            cf_of(&db, cf)?,
            read_options(),
            IteratorMode::From(prefix, Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    /// Calls `f` on every key-value pair of a column family from `start` on, in key order,
    /// without collecting them.
    pub fn for_each_from(
        &self,
        cf: &str,
        start: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<()>,
    ) -> Result<()> {
        let db = self.db()?;
        let iter = db.iterator_cf_opt(
            cf_of(&db, cf)?,
            scan_options(),
            IteratorMode::From(start, Direction::Forward),
        );
        for item in iter {
            let (k, v) = item?;
            f(&k, &v)?;
        }
        Ok(())
    }

    /// The largest key of a column family.
    pub fn last_key(&self, cf: &str) -> Result<Option<Vec<u8>>> {
        let db = self.db()?;
        let last = match db
            .iterator_cf_opt(cf_of(&db, cf)?, scan_options(), IteratorMode::End)
            .next()
        {
            Some(r) => Ok(Some(r?.0.to_vec())),
            None => Ok(None),
        };
        last
    }

    /// The options a column family is opened with, for building SST files that match it
    /// (same compression, bloom filters and prefix extractor).
    pub fn cf_options(&self, cf: &str) -> Options {
        cf_options(cf, &self.opts.block_cache)
    }

    /// Ingests SST files built with [`Shard::cf_options`] into a column family. The files must
    /// be sorted and not overlap each other; they are moved (hard-linked), not copied.
    /// Ingested rows bypass the oplog: replicas must bootstrap again afterwards.
    pub fn ingest(&self, cf: &str, files: &[PathBuf]) -> Result<()> {
        if files.is_empty() {
            return Ok(());
        }
        let mut opts = IngestExternalFileOptions::default();
        opts.set_move_files(true);
        let db = self.db()?;
        db.ingest_external_file_cf_opts(cf_of(&db, cf)?, &opts, files.to_vec())?;
        self.opts.shared.versions.bump_all();
        Ok(())
    }

    /// Bytes of live SST files of a column family (RocksDB's `rocksdb.total-sst-files-size`).
    pub fn sst_bytes(&self, cf: &str) -> Result<u64> {
        let db = self.db()?;
        let v = db.property_int_value_cf(cf_of(&db, cf)?, "rocksdb.total-sst-files-size")?;
        Ok(v.unwrap_or(0))
    }

    /// Flushes memtables and waits, so data is in SST files (used before a clean shutdown).
    pub fn flush(&self) -> Result<()> {
        for name in keys::ALL_CFS {
            self.flush_cf(name)?;
        }
        Ok(())
    }

    /// Flushes one column family's memtable and waits.
    pub fn flush_cf(&self, cf: &str) -> Result<()> {
        let db = self.db()?;
        db.flush_cf(cf_of(&db, cf)?)?;
        Ok(())
    }

    /// Calls `f` on every key-value pair of a column family in key order, without holding
    /// them all in memory (for whole-shard walks such as verification).
    pub fn for_each(&self, cf: &str, f: impl FnMut(&[u8], &[u8]) -> Result<()>) -> Result<()> {
        self.for_each_from(cf, &[], f)
    }

    /// An integer property of a column family (0 when RocksDB does not report it).
    pub fn cf_property(&self, cf: &str, name: &PropName) -> Result<u64> {
        let db = self.db()?;
        let v = db.property_int_value_cf(cf_of(&db, cf)?, name)?;
        Ok(v.unwrap_or(0))
    }

    /// An integer property of the whole instance (0 when RocksDB does not report it).
    pub fn db_property(&self, name: &PropName) -> Result<u64> {
        Ok(self.db()?.property_int_value(name)?.unwrap_or(0))
    }

    /// Bytes of SST files in the current LSM tree of a column family.
    pub fn live_sst_bytes(&self, cf: &str) -> Result<u64> {
        self.cf_property(cf, properties::LIVE_SST_FILES_SIZE)
    }

    /// Compacts a whole column family down to its last level, blocking until done. The last
    /// level is rewritten too, so deleted rows and their tombstones are dropped.
    pub fn compact_cf(&self, cf: &str) -> Result<()> {
        let mut opts = CompactOptions::default();
        opts.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
        opts.set_change_level(true);
        let db = self.db()?;
        db.compact_range_cf_opt(cf_of(&db, cf)?, None::<&[u8]>, None::<&[u8]>, &opts);
        Ok(())
    }

    /// Writes a consistent point-in-time copy of the shard to `path` (which must not exist):
    /// memtables are flushed, SST files hard-linked when on the same file system.
    pub fn checkpoint(&self, path: &Path) -> Result<()> {
        let db = self.db()?;
        Checkpoint::new(&db)?.create_checkpoint(path)?;
        Ok(())
    }
}

/// Finishes or undoes a checkpoint swap cut short by a crash: the live files were moved to
/// `NNN.old` and the staged ones not yet renamed in, so the old files go back.
fn recover_swap(path: &Path) -> Result<()> {
    let old = path.with_extension("old");
    if !path.exists() && old.join("CURRENT").is_file() {
        tracing::warn!(path = %path.display(), "restoring the shard files a crash left mid-swap");
        std::fs::rename(&old, path)?;
        sync_parent(path)?;
    }
    Ok(())
}

fn add_ops(db: &DB, wb: &mut WriteBatch, ops: &[Op]) -> Result<()> {
    for op in ops {
        let cf = cf_of(db, op.cf_name())?;
        match op.kind {
            OpKind::Put => wb.put_cf(cf, &op.key, &op.value),
            OpKind::Delete => wb.delete_cf(cf, &op.key),
            OpKind::Merge => wb.merge_cf(cf, &op.key, &op.value),
            OpKind::DeleteRange => wb.delete_range_cf(cf, &op.key, &op.value),
        }
    }
    Ok(())
}

fn collect_pairs<'a>(
    iter: impl Iterator<Item = Result<(Box<[u8]>, Box<[u8]>), rocksdb::Error>> + 'a,
    owner: u64,
    limit: usize,
) -> Result<Vec<(u64, Vec<u8>)>> {
    let mut out = Vec::new();
    for item in iter {
        let (key, value) = item?;
        match keys::decode_pair(&key) {
            Some((o, id)) if o == owner => out.push((id, value.to_vec())),
            _ => break,
        }
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
