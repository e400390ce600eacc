//! One shard: a RocksDB instance with every column family of [`crate::keys`].

use std::path::{Path, PathBuf};

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, Direction, IteratorMode,
    MergeOperands, Options, ReadOptions, SliceTransform, WriteBatch, WriteOptions, DB,
};

use crate::error::{Error, Result};
use crate::keys::{self, CF_META};

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Settings shared by every shard of a node.
#[derive(Clone)]
pub struct ShardOptions {
    /// The block cache all shards share.
    pub block_cache: Cache,
    /// Fsync the WAL before acknowledging a write.
    pub sync_writes: bool,
}

/// A shard's RocksDB instance.
pub struct Shard {
    db: DB,
    index: usize,
    path: PathBuf,
    sync_writes: bool,
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

impl Shard {
    /// Opens (creating if needed) shard `index` of `count` under `path`.
    pub fn open(path: &Path, index: usize, count: usize, opts: &ShardOptions) -> Result<Shard> {
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(2);
        db_opts.set_bytes_per_sync(1 << 20);
        let cfs = keys::ALL_CFS
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, cf_options(name, &opts.block_cache)));
        let db = DB::open_cf_descriptors(&db_opts, path, cfs)?;
        let shard = Shard {
            db,
            index,
            path: path.to_path_buf(),
            sync_writes: opts.sync_writes,
        };
        shard.check_meta(count)?;
        Ok(shard)
    }

    fn check_meta(&self, count: usize) -> Result<()> {
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
            None => {
                let mut batch = WriteBatch::default();
                let meta = self.cf(CF_META)?;
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
                self.write(batch)?;
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

    /// The column family named `name`.
    pub fn cf(&self, name: &str) -> Result<&ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| Error::Storage(format!("column family {name} missing")))
    }

    /// A point read.
    pub fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(cf)?, key)?)
    }

    /// Whether a key exists.
    pub fn contains(&self, cf: &str, key: &[u8]) -> Result<bool> {
        Ok(self.db.get_pinned_cf(self.cf(cf)?, key)?.is_some())
    }

    /// Applies a batch atomically; acknowledged once synced to the WAL unless the node runs
    /// in the relaxed (no-fsync) mode.
    pub fn write(&self, batch: WriteBatch) -> Result<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(self.sync_writes);
        Ok(self.db.write_opt(batch, &opts)?)
    }

    /// Applies a batch whose loss on a crash is harmless (it can be redone), without fsync.
    pub fn write_relaxed(&self, batch: WriteBatch) -> Result<()> {
        Ok(self.db.write(batch)?)
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
        let mut ro = ReadOptions::default();
        ro.set_prefix_same_as_start(true);
        let start = keys::pair_key(owner, before - 1);
        let iter = self.db.iterator_cf_opt(
            self.cf(cf)?,
            ro,
            IteratorMode::From(&start, Direction::Reverse),
        );
        collect_pairs(iter, owner, limit)
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
        let mut ro = ReadOptions::default();
        ro.set_prefix_same_as_start(true);
        let iter = self.db.iterator_cf_opt(
            self.cf(cf)?,
            ro,
            IteratorMode::From(&start, Direction::Forward),
        );
        collect_pairs(iter, owner, limit)
    }

    /// Every key-value pair of a column family, in key order (for start-up recovery).
    pub fn scan_all(&self, cf: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.db
            .iterator_cf(self.cf(cf)?, IteratorMode::Start)
            .map(|r| {
                r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(Error::from)
            })
            .collect()
    }

    /// Calls `f` on every key-value pair of a column family from `start` on, in key order,
    /// without collecting them.
    pub fn for_each_from(
        &self,
        cf: &str,
        start: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<()>,
    ) -> Result<()> {
        let iter = self
            .db
            .iterator_cf(self.cf(cf)?, IteratorMode::From(start, Direction::Forward));
        for item in iter {
            let (k, v) = item?;
            f(&k, &v)?;
        }
        Ok(())
    }

    /// The largest key of a column family.
    pub fn last_key(&self, cf: &str) -> Result<Option<Vec<u8>>> {
        match self.db.iterator_cf(self.cf(cf)?, IteratorMode::End).next() {
            Some(r) => Ok(Some(r?.0.to_vec())),
            None => Ok(None),
        }
    }

    /// Deletes every key in `[from, to)` of a column family, synced.
    pub fn delete_range(&self, cf: &str, from: &[u8], to: &[u8]) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.cf(cf)?, from, to);
        self.write(batch)
    }

    /// Flushes memtables and waits, so data is in SST files (used before a clean shutdown).
    pub fn flush(&self) -> Result<()> {
        for name in keys::ALL_CFS {
            self.db.flush_cf(self.cf(name)?)?;
        }
        Ok(())
    }
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
