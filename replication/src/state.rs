//! What a node knows about replication, shared by its tasks and read by the status endpoint:
//! on a primary, each replica's acknowledged LSN per shard and when LSNs were committed; on a
//! replica, how far it has applied and how far the primary is.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// Commit times remembered per shard, for lag in seconds (older LSNs count as the oldest).
const COMMIT_TIMES: usize = 1 << 16;

/// A replica as its primary sees it, for one shard.
#[derive(Debug, Clone)]
pub struct ReplicaProgress {
    /// Its last durable LSN.
    pub acked: u64,
    /// Whether its stream is open.
    pub connected: bool,
    /// Which of its streams is the current one (an old one may end after a new one began).
    pub stream: u64,
}

/// A replica's own view of one shard.
#[derive(Debug, Clone, Default)]
pub struct FollowState {
    /// The primary's last LSN as last heard.
    pub primary_last_lsn: u64,
    /// Since when this copy has been behind what it last heard (None: caught up).
    pub behind_since: Option<Instant>,
    /// Whether the stream to the primary is up.
    pub connected: bool,
    /// Checkpoints installed so far.
    pub bootstraps: u64,
    /// Bytes received of the checkpoint being received (or of the last one).
    pub checkpoint_bytes: u64,
    /// Why this shard stopped following (an apply failed); None while it follows.
    pub stopped: Option<String>,
    /// Whether every image file the copy's rows name has been fetched (checked once per
    /// run of the node and again after each checkpoint installed).
    pub files_checked: bool,
}

/// Per-shard replication state.
pub struct ShardState {
    /// The shard's last committed LSN, published on every commit (wakes waiting pulls).
    pub committed: watch::Sender<u64>,
    /// The highest LSN any replica has acknowledged (wakes sync-mode writers).
    pub acked: watch::Sender<u64>,
    /// Bumped by every acknowledgement of any replica (wakes writers waiting for a sync set,
    /// whose members may acknowledge an LSN another replica reached first).
    pub acks: watch::Sender<u64>,
    /// Replicas by node name (primary side).
    pub replicas: Mutex<BTreeMap<String, ReplicaProgress>>,
    /// (last LSN of a commit group, when) pairs, oldest first (primary side).
    commit_times: Mutex<VecDeque<(u64, Instant)>>,
    /// The replica side.
    pub follow: Mutex<FollowState>,
    /// Held by an apply in flight (see `follower.rs`).
    pub apply: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// On a cluster node, the replicas whose acknowledgement a write of this shard waits
    /// for (the map's sync set, or a superset while it changes); None on a standalone node,
    /// which follows its acknowledgement mode instead.
    sync: Mutex<Option<SyncSet>>,
    /// The highest epoch of this shard seen in the cluster map (0 on a standalone node). A
    /// copy following the shard takes nothing from a primary below it.
    map_epoch: AtomicU64,
    /// (epoch, last LSN) of the log this copy closed for a planned handover: its entries up
    /// to that LSN are final, and the target holds them all before it takes over.
    final_log: Mutex<Option<(u64, u64)>>,
}

/// Who must acknowledge a write of a cluster shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSet {
    /// The replicas that must all have it.
    pub members: Vec<String>,
    /// How many members there must be at least (`min_sync`, capped at the replicas): with
    /// fewer, writes wait (and then fail) rather than being acknowledged with fewer copies.
    pub min: usize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ShardState {
    /// State of a shard whose log ends at `last_lsn`.
    pub fn new(last_lsn: u64) -> Self {
        ShardState {
            committed: watch::Sender::new(last_lsn),
            acked: watch::Sender::new(0),
            acks: watch::Sender::new(0),
            replicas: Mutex::new(BTreeMap::new()),
            commit_times: Mutex::new(VecDeque::new()),
            follow: Mutex::new(FollowState::default()),
            apply: std::sync::Arc::new(tokio::sync::Mutex::new(())),
            sync: Mutex::new(None),
            map_epoch: AtomicU64::new(0),
            final_log: Mutex::new(None),
        }
    }

    /// Records that this copy's log at `epoch` ended at `last` for a planned handover.
    pub fn set_final(&self, epoch: u64, last: u64) {
        *lock(&self.final_log) = Some((epoch, last));
    }

    /// Whether the entry at `lsn`, made at `epoch`, is in a log this copy closed for a
    /// planned handover.
    pub fn is_final(&self, epoch: u64, lsn: u64) -> bool {
        lock(&self.final_log).is_some_and(|(e, last)| e == epoch && lsn <= last)
    }

    /// Records an epoch of the shard seen in the map; the highest one seen is kept.
    pub fn saw_map_epoch(&self, epoch: u64) {
        self.map_epoch.fetch_max(epoch, Ordering::SeqCst);
    }

    /// The highest epoch of the shard seen in the map.
    pub fn map_epoch(&self) -> u64 {
        self.map_epoch.load(Ordering::SeqCst)
    }

    /// Sets who acknowledges writes (see the field).
    pub fn set_sync(&self, sync: Option<SyncSet>) {
        *lock(&self.sync) = sync;
    }

    /// Who acknowledges writes now.
    pub fn sync(&self) -> Option<SyncSet> {
        lock(&self.sync).clone()
    }

    /// Whether `lsn` is acknowledged: the sync set has at least its minimum of members and
    /// each has acknowledged it (Some), or None on a standalone node.
    pub fn sync_has(&self, lsn: u64) -> Option<bool> {
        let sync = lock(&self.sync).clone()?;
        let replicas = lock(&self.replicas);
        Some(
            sync.members.len() >= sync.min
                && sync
                    .members
                    .iter()
                    .all(|n| replicas.get(n).is_some_and(|p| p.acked >= lsn)),
        )
    }

    /// Records a commit (called from the engine's commit hook, on a writer's thread).
    pub fn on_commit(&self, lsn: u64) {
        {
            let mut times = lock(&self.commit_times);
            if times.len() >= COMMIT_TIMES {
                times.pop_front();
            }
            times.push_back((lsn, Instant::now()));
        }
        self.committed.send_replace(lsn);
    }

    /// How long ago the oldest LSN above `acked` was committed (zero if none is).
    pub fn age_after(&self, acked: u64, last_lsn: u64) -> Duration {
        if acked >= last_lsn {
            return Duration::ZERO;
        }
        let times = lock(&self.commit_times);
        // The group holding acked+1 is the first whose last LSN is above acked.
        let i = times.partition_point(|(lsn, _)| *lsn <= acked);
        times
            .get(i)
            .or(times.front())
            .map_or(Duration::ZERO, |(_, t)| t.elapsed())
    }

    /// Forgets every replica's progress: done when this copy becomes the shard's primary,
    /// since what a replica acknowledged to an earlier primary (or to this node in an
    /// earlier term, before its log was rolled back to another primary's) says nothing of
    /// this log. Replicas register again with their Hello, at the point both logs agree on.
    pub fn reset_replicas(&self) {
        lock(&self.replicas).clear();
        self.acked.send_replace(0);
        self.acks.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Records a replica's acknowledgement.
    pub fn ack(&self, node: &str, applied: u64) {
        let mut replicas = lock(&self.replicas);
        let p = replicas.entry(node.to_string()).or_insert(ReplicaProgress {
            acked: 0,
            connected: true,
            stream: 0,
        });
        p.acked = applied;
        let best = replicas.values().map(|p| p.acked).max().unwrap_or(0);
        drop(replicas);
        self.acks.send_modify(|n| *n = n.wrapping_add(1));
        self.acked.send_if_modified(|a| {
            let changed = *a != best;
            *a = best;
            changed
        });
    }

    /// Marks a replica's new stream up; returns its number for [`ShardState::disconnected`].
    pub fn connected(&self, node: &str) -> u64 {
        match lock(&self.replicas).get_mut(node) {
            Some(p) => {
                p.connected = true;
                p.stream += 1;
                p.stream
            }
            None => 0,
        }
    }

    /// Marks a replica's stream down, unless a newer one has taken its place.
    pub fn disconnected(&self, node: &str, stream: u64) {
        if let Some(p) = lock(&self.replicas).get_mut(node) {
            if p.stream == stream {
                p.connected = false;
            }
        }
    }

    /// The LSN below which every registered replica has everything (None: no replicas).
    pub fn min_acked(&self) -> Option<u64> {
        lock(&self.replicas).values().map(|p| p.acked).min()
    }

    /// A copy of the replicas' progress.
    pub fn replicas(&self) -> BTreeMap<String, ReplicaProgress> {
        lock(&self.replicas).clone()
    }

    /// Updates the replica side after hearing from the primary or applying.
    pub fn follow_update(&self, f: impl FnOnce(&mut FollowState)) {
        f(&mut lock(&self.follow));
    }

    /// A copy of the replica side.
    pub fn follow(&self) -> FollowState {
        lock(&self.follow).clone()
    }
}
