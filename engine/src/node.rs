//! A node: its shards, id generators, locks and the fan-out worker, opened from a data dir.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cache::{CacheStats, TweetCache};
use crate::celebrities::Celebrities;
use crate::datadir;
use crate::error::{Error, Result};
use crate::homecache::HomeCache;
use crate::keys::{self, Counter, CF_COUNTERS};
use crate::media::Media;
use crate::outbox::FanoutQueues;
use crate::placement::{Held, Placement, ShardId};
use crate::search::Search;
use crate::shard::{Shard, ShardOptions, ShardShared};
use crate::slots::HashPool;
use crate::steps::Remote;

/// Whether a node takes writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    /// Takes writes, assigns LSNs, runs the fan-out worker.
    Primary,
    /// Applies what a primary ships; refuses writes; leaves fan-out to the primary (its
    /// `home` rows arrive through the oplog).
    Replica,
}

/// What a process opens a data dir for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// A serving node: the fan-out workers run, a primary resumes its outbox, and the role
    /// is recorded in the data dir (a dir last recorded as a replica opens as a replica,
    /// whatever `role` asks: see [`crate::role`]).
    Serve,
    /// Looking only (tools' read-only commands, checking a restored dir): no fan-out worker
    /// runs, the outbox is left alone, logged writes are refused with
    /// [`Error::NotPrimary`], and the role file is neither needed nor written.
    Inspect,
    /// Operator writes on a stopped primary's dir (account actions): logged writes are taken,
    /// but no fan-out worker runs and the outbox is left for the next start. A dir recorded
    /// as a replica is refused: its writes would reuse the primary's LSNs in its epoch.
    Maintain,
}

/// How a node is set up.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Directory holding the shards.
    pub data_dir: PathBuf,
    /// Shards of a new data dir (an existing one keeps the count it was made with).
    pub shards: usize,
    /// Bytes of block cache shared by all shards.
    pub block_cache_bytes: usize,
    /// Authors with more followers than this are not fanned out; their tweets are merged into
    /// feeds at read time.
    pub celebrity_threshold: u64,
    /// Newest rows kept in each materialized home feed.
    pub home_cap: usize,
    /// Recent tweets copied into the follower's feed when following someone.
    pub backfill: usize,
    /// Fsync before acknowledging writes (turning it off is the relaxed mode).
    pub sync_writes: bool,
    /// Bytes of tweet documents the hot-tweet cache may hold (0 disables it).
    pub tweet_cache_bytes: usize,
    /// Readers whose first home page is kept merged in memory (0 disables it).
    pub home_cache_entries: usize,
    /// Largest image upload, in bytes.
    pub max_media_bytes: usize,
    /// Threads copying tweets into followers' feeds.
    pub fanout_workers: usize,
    /// Make the data dir if it holds no Chirp data; when false, opening such a dir fails
    /// (tools that inspect a stopped node must not create an empty one by mistake).
    pub create: bool,
    /// The role the node starts in (in [`OpenMode::Serve`], a replica's data dir stays a
    /// replica when this asks for a primary).
    pub role: NodeRole,
    /// Password hashes (sign-up, log-in, reset) computed at once, each on a thread of its own;
    /// more wait briefly, then fail with [`Error::Unavailable`]. Each holds argon2's 19 MiB, so
    /// this bounds their memory.
    pub password_hash_slots: usize,
    /// What the data dir is opened for.
    pub mode: OpenMode,
    /// How long a session lasts after its last use (sliding: every use extends it).
    pub session_lifetime: std::time::Duration,
    /// The cluster this node's data dir belongs to; None for a standalone node, which holds
    /// every shard of its dir. A cluster node holds the shards the map gives it.
    pub cluster: Option<String>,
    /// The shards a cluster node opens at start (the rest come by [`Inner::hold_shard`]).
    pub hold: Option<Vec<ShardId>>,
}

impl NodeConfig {
    /// Defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        NodeConfig {
            data_dir: data_dir.into(),
            shards: 4,
            block_cache_bytes: 256 << 20,
            celebrity_threshold: 10_000,
            home_cap: 800,
            backfill: 100,
            sync_writes: true,
            tweet_cache_bytes: 128 << 20,
            home_cache_entries: 100_000,
            max_media_bytes: crate::media::DEFAULT_MAX_MEDIA_BYTES,
            fanout_workers: std::thread::available_parallelism().map_or(2, |n| n.get().max(2)),
            create: true,
            role: NodeRole::Primary,
            password_hash_slots: std::thread::available_parallelism().map_or(2, |n| n.get()),
            mode: OpenMode::Serve,
            session_lifetime: crate::sessions::DEFAULT_SESSION_LIFETIME,
            cluster: None,
            hold: None,
        }
    }
}

const LOCK_STRIPES: usize = 256;

/// Shared state of a node; the domain operations are methods on it.
pub struct Inner {
    /// Which shard holds what, and the shards held here: the only way to a shard.
    pub(crate) placement: Placement,
    pub(crate) config: NodeConfig,
    /// Image files and their bounded decoders.
    pub(crate) media: Media,
    /// The threads password hashes (argon2, 19 MiB each) run on.
    pub(crate) hashing: HashPool,
    user_locks: Vec<Mutex<()>>,
    pub(crate) handle_lock: Mutex<()>,
    /// Authors whose tweets merge into feeds at read time.
    pub(crate) celebrities: Celebrities,
    /// How steps reach shards held by other nodes (none on a standalone node).
    pub(crate) remote: OnceLock<Arc<dyn Remote>>,
    /// Hashtag search over the held shards.
    pub(crate) hashtags: Search,
    pub(crate) cache: TweetCache,
    /// First home pages as merged, by reader.
    pub(crate) home_cache: HomeCache,
    /// The fan-out queues (one per worker; a tweet's jobs always go to the same one) and
    /// what the workers report.
    pub(crate) fanout: FanoutQueues,
    pub(crate) stopping: AtomicBool,
    pub(crate) opened_at: std::time::Instant,
    /// What every shard opens with: the shared block cache, fsync setting and commit hook.
    pub(crate) shard_opts: ShardOptions,
}

/// A running node. Dropping it stops the background threads.
pub struct Node {
    inner: Arc<Inner>,
    workers: Vec<JoinHandle<()>>,
}

/// How often a cluster node learns the celebrities of the shards held elsewhere.
const CELEBRITIES_EVERY: Duration = Duration::from_secs(5);

/// How often the hashtag indexes are saved while running, bounding what a restart replays.
const INDEX_SAVE_EVERY: Duration = Duration::from_secs(300);

/// Saves the hashtag indexes every [`INDEX_SAVE_EVERY`] and sweeps the outbox when fan-out
/// jobs were left in it, until the node stops.
fn maintain(inner: &Inner) {
    let mut last_save = Instant::now();
    let mut last_learnt: Option<Instant> = None;
    while !inner.stopping.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
        if last_learnt.is_none_or(|t| t.elapsed() >= CELEBRITIES_EVERY) {
            inner.refresh_remote_celebrities();
            last_learnt = Some(Instant::now());
        }
        if let Err(e) = inner.sweep_outbox() {
            tracing::warn!(error = %e, "sweeping the fan-out outbox failed");
        }
        if last_save.elapsed() >= INDEX_SAVE_EVERY {
            if let Err(e) = inner.save_indexes() {
                tracing::warn!(error = %e, "saving the hashtag indexes failed");
            }
            last_save = Instant::now();
        }
    }
}

impl std::ops::Deref for Node {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Opens shard `s` of a data dir (`create`: make it if it does not exist).
fn open_shard(
    data_dir: &Path,
    s: ShardId,
    count: usize,
    create: bool,
    opts: &ShardOptions,
) -> Result<Shard> {
    let path = datadir::shard_dir(data_dir, s);
    let create = create && !path.exists();
    Shard::open(&path, s, count, create, opts)
}

impl Node {
    /// Opens the node's data dir; in [`OpenMode::Serve`] recovers pending fan-out and starts
    /// the fan-out workers.
    pub fn open(mut config: NodeConfig) -> Result<Node> {
        if config.create {
            crate::durable::create_dir_synced(&config.data_dir.join("shards"))?;
        }
        let plan = datadir::plan(&config)?;
        let count = plan.count;
        let opts = ShardOptions {
            block_cache: rocksdb::Cache::new_lru_cache(config.block_cache_bytes),
            sync_writes: config.sync_writes,
            shared: Arc::new(ShardShared::new()),
        };
        // Shards open read-only (gate closed) until their role is settled below.
        let mut shards = Vec::with_capacity(plan.open.len());
        for &i in &plan.open {
            let create = plan.fresh.is_some() || config.cluster.is_some();
            shards.push(open_shard(&config.data_dir, i, count, create, &opts)?);
        }
        // RocksDB fsyncs inside a shard's dir but not the entry that names the dir itself.
        std::fs::File::open(config.data_dir.join("shards"))?.sync_all()?;
        if let Some(manifest) = &plan.fresh {
            datadir::write_manifest(&config.data_dir, manifest)?;
        }
        // Only now, with every shard's lock held, is the role file ours to read and write. A
        // cluster node's shards take their roles from the map instead, one by one.
        let writable = if config.cluster.is_some() {
            false
        } else {
            config.role = crate::role::settle_role(&config)?;
            match config.mode {
                OpenMode::Inspect => false,
                OpenMode::Serve | OpenMode::Maintain => config.role == NodeRole::Primary,
            }
        };
        let media = Media::open(&config.data_dir, config.max_media_bytes)?;
        let (fanout, rxs) = FanoutQueues::new(config.fanout_workers);
        let inner = Arc::new(Inner {
            placement: Placement::new(count)?,
            shard_opts: opts,
            media,
            hashing: HashPool::new(config.password_hash_slots, crate::accounts::HASH_WAIT)?,
            user_locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            handle_lock: Mutex::new(()),
            celebrities: Celebrities::new(config.celebrity_threshold),
            hashtags: Search::new(&config.data_dir, count),
            remote: OnceLock::new(),
            cache: TweetCache::new(config.tweet_cache_bytes),
            home_cache: HomeCache::new(config.home_cache_entries),
            fanout,
            stopping: AtomicBool::new(false),
            opened_at: std::time::Instant::now(),
            config,
        });
        for shard in shards {
            inner.adopt(shard, writable)?;
        }
        let mut workers = Vec::with_capacity(rxs.len() + 1);
        if inner.config.mode == OpenMode::Serve {
            // A replica's outbox rows are the primary's jobs: the primary fans them out and
            // the resulting rows arrive through the oplog. They become ours on promotion.
            if writable {
                inner.resume_fanout()?;
            }
            for (i, rx) in rxs.into_iter().enumerate() {
                let fanout_inner = Arc::clone(&inner);
                workers.push(
                    std::thread::Builder::new()
                        .name(format!("chirp-fanout-{i}"))
                        .spawn(move || crate::fanout::run(&fanout_inner, rx))?,
                );
            }
            let maint_inner = Arc::clone(&inner);
            let maintenance = std::thread::Builder::new()
                .name("chirp-maintain".into())
                .spawn(move || maintain(&maint_inner))?;
            workers.push(maintenance);
        } else {
            // No worker: jobs posted meanwhile stay in the outbox for the next start.
            drop(rxs);
        }
        tracing::info!(shards = count, dir = %inner.config.data_dir.display(), "node open");
        Ok(Node { inner, workers })
    }

    /// Stops the fan-out worker (pending jobs stay in the outbox for the next start), saves
    /// the hashtag indexes and flushes every shard.
    pub fn close(mut self) -> Result<()> {
        self.stop_worker();
        self.inner.save_indexes()?;
        self.inner.flush()?;
        Ok(())
    }

    fn stop_worker(&mut self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        for worker in self.workers.drain(..) {
            if worker.join().is_err() {
                tracing::error!("a background thread panicked");
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop_worker();
    }
}

impl Inner {
    /// Starts holding an opened shard: its hashtag index, its celebrities and its id
    /// generators are loaded, then its gate is set.
    fn adopt(&self, shard: Shard, writable: bool) -> Result<()> {
        shard.set_writable(writable);
        self.hashtags.open(&shard)?;
        self.celebrities.load(&self.placement, &shard)?;
        self.placement.hold(Held::open(shard)?)
    }

    /// Starts holding shard `s` on a cluster node, as the map assigned it: opened (made
    /// empty when this node never held it) with its gate closed, until
    /// [`Inner::set_shard_primary`] opens it.
    pub fn hold_shard(&self, s: ShardId) -> Result<()> {
        if self.config.cluster.is_none() {
            return Err(Error::invalid(
                "shard",
                "a standalone node holds every shard of its data dir",
            ));
        }
        if self.placement.holds(s) {
            return Ok(());
        }
        let count = self.placement.count();
        if let Some(held) = self.placement.dropped(s) {
            // Given away before: the slot stays, its files reopen there, made empty.
            held.shard.reopen_empty(count)?;
            crate::durable::sync_dir(&self.config.data_dir.join("shards"))?;
            self.hashtags.rebuild(&held.shard)?;
            self.celebrities.load(&self.placement, &held.shard)?;
            return self.placement.rehold(s);
        }
        let shard = open_shard(&self.config.data_dir, s, count, true, &self.shard_opts)?;
        crate::durable::sync_dir(&self.config.data_dir.join("shards"))?;
        self.adopt(shard, false)
    }

    /// Stops holding shard `s` on a cluster node (the map gave this copy away): lookups
    /// answer [`Error::NotHere`] from now on (so requests go to the shard's owners), the
    /// files are closed once reads in flight end, and moved to `dropped/NNN-<unix ms>` in
    /// the data dir, nothing deleted. Files of a shard not held (left by a copy given away
    /// while this node was down) are moved there too. Returns where they went; None if
    /// there was nothing to move. The caller stops replicating the shard first.
    pub fn drop_shard(&self, s: ShardId) -> Result<Option<PathBuf>> {
        if self.config.cluster.is_none() {
            return Err(Error::invalid(
                "shard",
                "a standalone node holds every shard of its data dir",
            ));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let to = self
            .config
            .data_dir
            .join("dropped")
            .join(format!("{s:03}-{now}"));
        let Some(held) = self.placement.drop_held(s) else {
            let stray = datadir::shard_dir(&self.config.data_dir, s);
            if !stray.exists() || self.placement.dropped(s).is_some() {
                return Ok(None);
            }
            crate::durable::create_dir_synced(&self.config.data_dir.join("dropped"))?;
            std::fs::rename(&stray, &to)?;
            crate::durable::sync_parent(&stray)?;
            crate::durable::sync_parent(&to)?;
            let _ = std::fs::remove_file(stray.with_extension("tags"));
            tracing::info!(shard = s, to = %to.display(), "moved aside the files of a copy this node no longer holds");
            return Ok(Some(to));
        };
        held.shard.close_and_move(&to)?;
        self.hashtags.forget(s)?;
        self.cache.clear();
        tracing::info!(shard = s, to = %to.display(), "dropped this node's copy of the shard");
        Ok(Some(to))
    }

    /// Opens or closes a held shard's write gate (the map made this copy its primary, or
    /// another). Opening it resumes the fan-out left in the outbox.
    pub fn set_shard_primary(&self, s: ShardId, primary: bool) -> Result<()> {
        let held = self.placement.held(s)?;
        if !primary {
            // Also ends a fence.
            held.shard.set_writable(false);
            return Ok(());
        }
        if held.shard.is_writable() {
            return Ok(());
        }
        held.raise_floors()?;
        held.shard.set_writable(true);
        if self.config.mode == OpenMode::Serve {
            self.resume_fanout()?;
        }
        Ok(())
    }

    /// Whether the data dir has files for shard `s` (held or not).
    pub fn has_shard_files(&self, s: ShardId) -> bool {
        datadir::shard_dir(&self.config.data_dir, s).exists()
    }

    /// The logical shard count (held here or not).
    pub fn shard_count(&self) -> usize {
        self.placement.count()
    }

    /// Which shard holds what, and which shards this node holds.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// Counters of the hot-tweet cache.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// The node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// The shard a new user's rows go to (see [`Placement::shard_for_new_user`]).
    pub(crate) fn new_user_shard(&self) -> Result<ShardId> {
        self.placement
            .shard_for_new_user()
            .ok_or_else(|| Error::NotPrimary(self.shard_opts.shared.primary_hint()))
    }

    /// The shard holding a user's rows.
    pub(crate) fn user_shard(&self, user_id: u64) -> Result<&Shard> {
        self.placement.user(user_id)
    }

    /// The shard holding a tweet: None if the id names no shard of the service.
    pub(crate) fn tweet_shard(&self, tweet_id: u64) -> Result<Option<&Shard>> {
        self.placement.by_id(tweet_id)
    }

    /// Serializes read-modify-write operations on one user's rows.
    pub(crate) fn lock_user(&self, user_id: u64) -> MutexGuard<'_, ()> {
        lock(&self.user_locks[(user_id % LOCK_STRIPES as u64) as usize])
    }

    /// Serializes handle claims.
    pub(crate) fn lock_handles(&self) -> MutexGuard<'_, ()> {
        lock(&self.handle_lock)
    }

    /// Bytes of live SST files per column family, summed over the shards.
    pub fn sst_bytes_per_cf(&self) -> Result<Vec<(&'static str, u64)>> {
        let mut out = Vec::with_capacity(keys::ALL_CFS.len());
        for cf in keys::ALL_CFS {
            let mut total = 0;
            for shard in self.placement.local() {
                total += shard.sst_bytes(cf)?;
            }
            out.push((cf, total));
        }
        Ok(out)
    }

    /// Flushes every shard's memtables into SST files.
    pub fn flush(&self) -> Result<()> {
        self.placement.local().try_for_each(Shard::flush)
    }

    /// Reads one counter of a user.
    pub(crate) fn counter(&self, user_id: u64, counter: Counter) -> Result<u64> {
        let v = self
            .user_shard(user_id)?
            .get(CF_COUNTERS, &keys::counter_key(user_id, counter))?;
        Ok(v.map(|v| keys::decode_counter_value(&v))
            .unwrap_or(0)
            .max(0) as u64)
    }
}
