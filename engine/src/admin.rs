//! What an operator sees and does to a node's storage: statistics read from RocksDB properties
//! and manual compaction. The values are plain serde types, so the admin listener and
//! `chirpctl` (which may open a stopped node directly) share one shape.

use std::sync::atomic::Ordering;
use std::time::Instant;

use rocksdb::properties;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys::ALL_CFS;
use crate::node::Inner;
use crate::shard::Shard;

/// A node's storage at a glance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeStats {
    /// Version of the engine (the workspace version).
    pub version: String,
    /// Seconds since the node opened its data dir.
    pub uptime_seconds: u64,
    /// The data directory.
    pub data_dir: String,
    /// The role the node is in now ("primary" or "replica"; a data dir opened read-only by a
    /// tool reports the role recorded in it).
    #[serde(default)]
    pub role: String,
    /// The block cache all shards share.
    pub block_cache: BlockCacheStats,
    /// The hot-tweet cache.
    pub tweet_cache: crate::cache::CacheStats,
    /// The home-page cache.
    #[serde(default)]
    pub home_cache: HomeCacheStats,
    /// The fan-out worker.
    pub fanout: FanoutStats,
    /// One entry per shard, by index.
    pub shards: Vec<ShardStats>,
}

/// How often a first home page was served as cached.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HomeCacheStats {
    /// First pages served from the cache.
    pub hits: u64,
    /// First pages merged from storage (none cached, or what was cached had changed).
    pub misses: u64,
}

/// Block cache occupancy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BlockCacheStats {
    /// Bytes in use.
    pub usage_bytes: u64,
    /// Configured capacity.
    pub capacity_bytes: u64,
}

/// The fan-out workers' queues.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FanoutStats {
    /// Jobs waiting (in a queue, for a retry, or in the outbox for the sweep) or running.
    pub pending_jobs: u64,
    /// Jobs finished (outbox row gone) since the node opened.
    pub jobs_done: u64,
    /// Milliseconds from posting to fanned out, for the last post fanned out.
    pub last_lag_ms: u64,
    /// Home rows written or removed by finished jobs, synced, since the node opened.
    #[serde(default)]
    pub home_rows: u64,
    /// Runs of a job that failed since the node opened (each is retried).
    #[serde(default)]
    pub failures: u64,
    /// Runs of a job after a failure since the node opened.
    #[serde(default)]
    pub retries: u64,
    /// Jobs left to the outbox sweep because their queue was full, since the node opened.
    #[serde(default)]
    pub overflows: u64,
}

/// One shard's RocksDB instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShardStats {
    /// Shard index.
    pub index: usize,
    /// The last LSN written to the shard's oplog (replicas measure their lag against it).
    pub last_lsn: u64,
    /// The replication epoch the shard writes with.
    pub epoch: u64,
    /// Bytes RocksDB estimates compaction still has to rewrite (`estimate-pending-compaction-bytes`).
    pub pending_compaction_bytes: u64,
    /// Rate writes are slowed to, bytes/s; 0 when writes are not being delayed.
    pub delayed_write_rate: u64,
    /// Whether writes are stopped until compaction catches up.
    pub write_stopped: bool,
    /// Per column family, in schema order.
    pub column_families: Vec<CfStats>,
}

/// One column family of a shard.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CfStats {
    /// Column family name.
    pub name: String,
    /// RocksDB's estimate of the number of keys (`estimate-num-keys`).
    pub estimate_keys: u64,
    /// Bytes of SST files in the current tree (`live-sst-files-size`).
    pub sst_bytes: u64,
    /// Bytes of live data, estimated (`estimate-live-data-size`).
    pub live_data_bytes: u64,
    /// Bytes in memtables, not yet flushed (`cur-size-all-mem-tables`).
    pub memtable_bytes: u64,
}

impl ShardStats {
    /// SST bytes over all column families.
    pub fn sst_bytes(&self) -> u64 {
        self.column_families.iter().map(|c| c.sst_bytes).sum()
    }

    /// Estimated keys over all column families.
    pub fn estimate_keys(&self) -> u64 {
        self.column_families.iter().map(|c| c.estimate_keys).sum()
    }
}

/// Where a compaction is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CompactProgress {
    /// Column families finished so far.
    pub done: usize,
    /// Column families to compact in all.
    pub total: usize,
    /// The shard being compacted.
    pub shard: usize,
    /// The column family being compacted.
    pub column_family: String,
}

/// The result of compacting one shard.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShardCompaction {
    /// Shard index.
    pub shard: usize,
    /// SST bytes after flushing, before compacting.
    pub bytes_before: u64,
    /// SST bytes after compacting.
    pub bytes_after: u64,
}

/// The result of a manual compaction.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CompactReport {
    /// Per shard compacted.
    pub shards: Vec<ShardCompaction>,
    /// Sum of `bytes_before`.
    pub bytes_before: u64,
    /// Sum of `bytes_after`.
    pub bytes_after: u64,
    /// Wall time taken.
    pub millis: u64,
}

fn shard_stats(shard: &Shard) -> Result<ShardStats> {
    let mut column_families = Vec::with_capacity(ALL_CFS.len());
    let mut pending_compaction_bytes = 0;
    for name in ALL_CFS {
        pending_compaction_bytes +=
            shard.cf_property(name, properties::ESTIMATE_PENDING_COMPACTION_BYTES)?;
        column_families.push(CfStats {
            name: name.to_string(),
            estimate_keys: shard.cf_property(name, properties::ESTIMATE_NUM_KEYS)?,
            sst_bytes: shard.live_sst_bytes(name)?,
            live_data_bytes: shard.cf_property(name, properties::ESTIMATE_LIVE_DATA_SIZE)?,
            memtable_bytes: shard.cf_property(name, properties::CUR_SIZE_ALL_MEM_TABLES)?,
        });
    }
    Ok(ShardStats {
        index: shard.index(),
        last_lsn: shard.last_lsn(),
        epoch: shard.epoch(),
        pending_compaction_bytes,
        delayed_write_rate: shard.db_property(properties::ACTUAL_DELAYED_WRITE_RATE)?,
        write_stopped: shard.db_property(properties::IS_WRITE_STOPPED)? != 0,
        column_families,
    })
}

fn sst_bytes(shard: &Shard) -> Result<u64> {
    ALL_CFS.iter().map(|cf| shard.live_sst_bytes(cf)).sum()
}

impl Inner {
    /// Statistics of every shard, the block cache and the fan-out worker. Cheap: RocksDB
    /// keeps these numbers in memory.
    pub fn stats(&self) -> Result<NodeStats> {
        Ok(NodeStats {
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: self.opened_at.elapsed().as_secs(),
            data_dir: self.config.data_dir.display().to_string(),
            role: self.role_name().to_string(),
            tweet_cache: self.cache_stats(),
            home_cache: {
                let (hits, misses) = self.home_cache.counts();
                HomeCacheStats { hits, misses }
            },
            block_cache: BlockCacheStats {
                usage_bytes: self.shard_opts.block_cache.get_usage() as u64,
                capacity_bytes: self.config.block_cache_bytes as u64,
            },
            fanout: FanoutStats {
                pending_jobs: self.fanout_pending(),
                jobs_done: self.fanout.done.load(Ordering::Relaxed),
                last_lag_ms: self.fanout.last_lag_ms.load(Ordering::Relaxed),
                home_rows: self.fanout.rows.load(Ordering::Relaxed),
                failures: self.fanout.failures.load(Ordering::Relaxed),
                retries: self.fanout.retries.load(Ordering::Relaxed),
                overflows: self.fanout.overflows.load(Ordering::Relaxed),
            },
            shards: self
                .placement
                .local()
                .map(shard_stats)
                .collect::<Result<_>>()?,
        })
    }

    /// Compacts one shard (or all), column family by column family, calling `progress`
    /// before each. Memtables are flushed first so "before" counts every row. Blocks for as
    /// long as the compaction takes; reads and writes go on meanwhile.
    pub fn compact(
        &self,
        shard: Option<usize>,
        progress: &mut dyn FnMut(&CompactProgress),
    ) -> Result<CompactReport> {
        let targets: Vec<&Shard> = match shard {
            None => self.placement.local().collect(),
            Some(i) => vec![self.placement.shard(i).map_err(|_| {
                Error::invalid(
                    "shard",
                    format!("this node holds shards {:?}", self.placement.local_ids()),
                )
            })?],
        };
        let started = Instant::now();
        let total = targets.len() * ALL_CFS.len();
        let mut done = 0;
        let mut shards = Vec::with_capacity(targets.len());
        for shard in targets {
            shard.flush()?;
            let bytes_before = sst_bytes(shard)?;
            for name in ALL_CFS {
                progress(&CompactProgress {
                    done,
                    total,
                    shard: shard.index(),
                    column_family: name.to_string(),
                });
                shard.compact_cf(name)?;
                done += 1;
            }
            let bytes_after = sst_bytes(shard)?;
            tracing::info!(
                shard = shard.index(),
                bytes_before,
                bytes_after,
                "compacted"
            );
            shards.push(ShardCompaction {
                shard: shard.index(),
                bytes_before,
                bytes_after,
            });
        }
        Ok(CompactReport {
            bytes_before: shards.iter().map(|s| s.bytes_before).sum(),
            bytes_after: shards.iter().map(|s| s.bytes_after).sum(),
            shards,
            millis: started.elapsed().as_millis() as u64,
        })
    }
}

/// A manual compaction started through the admin listener, as its client polls it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CompactJob {
    /// Whether it is still running.
    pub running: bool,
    /// The shard asked for; None for all.
    pub shard: Option<usize>,
    /// The last progress reported.
    pub progress: Option<CompactProgress>,
    /// The result, once finished.
    pub report: Option<CompactReport>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}
