//! Prometheus metrics: request counts and latencies recorded as requests finish, and the
//! engine's numbers (fan-out queue, RocksDB) read at scrape time. `docs/METRICS.md` lists
//! every series; keep it in step.

use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use chirp_engine::NodeStats;

/// The `Content-Type` of the Prometheus text format.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Labels of a request series: the route pattern (never the raw path), method and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: String,
    status: u16,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to 10 s on the usual 1-2.5-5 steps: a cached read sits in the first buckets,
    // an fsync or an argon2 hash in the middle, a stalled write near the top.
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

/// The node's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram, fn() -> Histogram>,
    started: Instant,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty metrics, with the clock of `chirp_uptime_seconds` started.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RequestLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "chirp_http_requests",
            "Requests served, by route pattern, method and status",
            requests.clone(),
        );
        registry.register(
            "chirp_http_request_duration_seconds",
            "Time from a request's arrival to its response, by route pattern, method and status",
            latency.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            started: Instant::now(),
        }
    }

    /// Records one finished request.
    pub fn observe_request(&self, route: &'static str, method: &str, status: u16, took: Duration) {
        let labels = RequestLabels {
            route,
            method: method.to_owned(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// Renders every series in the Prometheus text format, with the engine's numbers from
    /// `stats`.
    pub fn render(&self, stats: &NodeStats) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_text::encode(&mut out, &self.registry)?;
        prometheus_text::encode(&mut out, &engine_registry(stats, self.started.elapsed()))?;
        Ok(out)
    }
}

type Labels = Vec<(&'static str, String)>;

fn gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let g = Gauge::<i64>::default();
    g.set(value);
    registry.register(name, help, g);
}

fn gauge_f64(registry: &mut Registry, name: &str, help: &str, value: f64) {
    let g = Gauge::<f64, AtomicU64>::default();
    g.set(value);
    registry.register(name, help, g);
}

fn family(registry: &mut Registry, name: &str, help: &str, values: Vec<(Labels, i64)>) {
    let f = Family::<Labels, Gauge>::default();
    for (labels, value) in values {
        f.get_or_create(&labels).set(value);
    }
    registry.register(name, help, f);
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A registry built for one scrape from the engine's current numbers.
fn engine_registry(stats: &NodeStats, uptime: Duration) -> Registry {
    let mut r = Registry::default();
    gauge_f64(
        &mut r,
        "chirp_uptime_seconds",
        "Seconds since the node started",
        uptime.as_secs_f64(),
    );
    family(
        &mut r,
        "chirp_build_info",
        "Always 1; the version label names the build",
        vec![(vec![("version", stats.version.clone())], 1)],
    );
    gauge(
        &mut r,
        "chirp_fanout_pending_jobs",
        "Fan-out jobs queued or running",
        clamp(stats.fanout.pending_jobs),
    );
    for (name, help, value) in [
        (
            "chirp_fanout_jobs",
            "Fan-out jobs finished (outbox row gone) since the node started",
            stats.fanout.jobs_done,
        ),
        (
            "chirp_fanout_home_rows",
            "Home rows written or removed by finished fan-out jobs, synced, since the node started",
            stats.fanout.home_rows,
        ),
        (
            "chirp_fanout_failures",
            "Fan-out job runs that failed since the node started (each is retried)",
            stats.fanout.failures,
        ),
        (
            "chirp_fanout_retries",
            "Fan-out job runs after a failure since the node started",
            stats.fanout.retries,
        ),
        (
            "chirp_fanout_overflows",
            "Fan-out jobs left to the outbox sweep because their queue was full",
            stats.fanout.overflows,
        ),
    ] {
        let counter = Counter::<u64>::default();
        counter.inc_by(value);
        r.register(name, help, counter);
    }
    gauge_f64(
        &mut r,
        "chirp_fanout_lag_seconds",
        "From posting to fanned out, for the last post fanned out",
        stats.fanout.last_lag_ms as f64 / 1000.0,
    );
    let c = &stats.tweet_cache;
    for (name, help, value) in [
        (
            "chirp_home_cache_hits",
            "First home pages served from the home-page cache",
            stats.home_cache.hits,
        ),
        (
            "chirp_home_cache_misses",
            "First home pages merged from storage",
            stats.home_cache.misses,
        ),
        (
            "chirp_tweet_cache_hits",
            "Tweet lookups answered by the hot-tweet cache",
            c.hits,
        ),
        (
            "chirp_tweet_cache_misses",
            "Tweet lookups that went to RocksDB",
            c.misses,
        ),
        (
            "chirp_tweet_cache_evictions",
            "Tweets pushed out of the cache to make room",
            c.evictions,
        ),
    ] {
        let counter = Counter::<u64>::default();
        counter.inc_by(value);
        r.register(name, help, counter);
    }
    gauge(
        &mut r,
        "chirp_tweet_cache_bytes",
        "Bytes of tweets held by the hot-tweet cache",
        clamp(c.bytes),
    );
    gauge(
        &mut r,
        "chirp_tweet_cache_entries",
        "Tweets held by the hot-tweet cache",
        clamp(c.entries),
    );
    gauge(
        &mut r,
        "chirp_tweet_cache_capacity_bytes",
        "Byte budget of the hot-tweet cache",
        clamp(c.capacity_bytes),
    );
    gauge(
        &mut r,
        "chirp_rocksdb_block_cache_usage_bytes",
        "Bytes in the block cache shared by all shards",
        clamp(stats.block_cache.usage_bytes),
    );
    gauge(
        &mut r,
        "chirp_rocksdb_block_cache_capacity_bytes",
        "Capacity of the shared block cache",
        clamp(stats.block_cache.capacity_bytes),
    );
    let per_shard = |f: &dyn Fn(&chirp_engine::admin::ShardStats) -> i64| -> Vec<(Labels, i64)> {
        stats
            .shards
            .iter()
            .map(|s| (vec![("shard", s.index.to_string())], f(s)))
            .collect()
    };
    family(
        &mut r,
        "chirp_oplog_last_lsn",
        "Last LSN written to a shard's oplog (replication lag is measured against it)",
        per_shard(&|s| clamp(s.last_lsn)),
    );
    family(
        &mut r,
        "chirp_rocksdb_pending_compaction_bytes",
        "Bytes RocksDB estimates compaction has yet to rewrite",
        per_shard(&|s| clamp(s.pending_compaction_bytes)),
    );
    family(
        &mut r,
        "chirp_rocksdb_delayed_write_rate_bytes",
        "Rate writes are slowed to while compaction catches up (0: not delayed)",
        per_shard(&|s| clamp(s.delayed_write_rate)),
    );
    family(
        &mut r,
        "chirp_rocksdb_write_stopped",
        "1 while writes are stopped until compaction catches up",
        per_shard(&|s| i64::from(s.write_stopped)),
    );
    let per_cf = |f: &dyn Fn(&chirp_engine::admin::CfStats) -> u64| -> Vec<(Labels, i64)> {
        stats
            .shards
            .iter()
            .flat_map(|s| {
                s.column_families.iter().map(move |c| {
                    (
                        vec![("shard", s.index.to_string()), ("cf", c.name.clone())],
                        clamp(f(c)),
                    )
                })
            })
            .collect()
    };
    family(
        &mut r,
        "chirp_rocksdb_sst_bytes",
        "Bytes of SST files in the current tree of a column family",
        per_cf(&|c| c.sst_bytes),
    );
    family(
        &mut r,
        "chirp_rocksdb_memtable_bytes",
        "Bytes in a column family's memtables",
        per_cf(&|c| c.memtable_bytes),
    );
    family(
        &mut r,
        "chirp_rocksdb_estimated_keys",
        "RocksDB's estimate of the keys in a column family",
        per_cf(&|c| c.estimate_keys),
    );
    r
}
