//! The [`ControlPlane`] trait, and the two handles it gives out: [`Registration`] (a node's
//! liveness, held under a lease) and [`MapWatch`] (notice that the map changed).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::watch;

use crate::map::{ClusterConfig, ClusterMap, Controller, Member, NodeInfo, ShardUpdate};
use crate::{Error, Result};

/// Where the cluster map lives. Every method is one request to the control plane (or one
/// transaction), so each either happened whole or not at all.
#[async_trait]
pub trait ControlPlane: Send + Sync {
    /// The cluster's name.
    fn cluster(&self) -> &str;

    /// Writes `config` if the cluster has none; [`Error::ConfigExists`] if it has one.
    /// Returns the revision of the write.
    async fn create_config(&self, config: &ClusterConfig) -> Result<u64>;

    /// The cluster's config, or `None` if it was never created.
    async fn config(&self) -> Result<Option<ClusterConfig>>;

    /// Writes (or replaces) `members/<name>`. Returns the revision of the write.
    async fn put_member(&self, member: &Member) -> Result<u64>;

    /// Every member, by name.
    async fn members(&self) -> Result<Vec<Member>>;

    /// Registers this process as `nodes/<name>` under a lease of `ttl`, kept alive until
    /// the returned handle is closed or dropped (which revoke it: the node is gone at once)
    /// or abandoned (the lease then runs out, as after a crash).
    /// [`Error::AlreadyRegistered`] if a live registration holds the name.
    async fn register(&self, node: &NodeInfo, ttl: Duration) -> Result<Registration>;

    /// The live nodes, by name.
    async fn live_nodes(&self) -> Result<Vec<NodeInfo>>;

    /// The whole map at one revision: config, members, live nodes, and every shard with its
    /// `mod_revision`.
    async fn read_map(&self) -> Result<ClusterMap>;

    /// Writes every update or none: one transaction that compares each shard's
    /// `mod_revision` with the update's `expected_mod_revision` (0: absent). A mismatch is
    /// [`Error::Conflict`] naming the shards that moved on. Returns the new revision.
    async fn update_shards(&self, updates: &[ShardUpdate]) -> Result<u64>;

    /// Campaigns for controller: writes `controller` (naming `node`) under `lease` (the
    /// node's registration's) if no one holds it. Returns whoever holds it now, with its
    /// term: `node` won if the name is its own. The election ends with the lease.
    async fn campaign(&self, node: &str, lease: i64) -> Result<Controller>;

    /// Ends the election held at `term`, if it is still held at that term (a controller that
    /// may no longer run: a member being drained or removed), so another node can win it.
    async fn resign(&self, term: u64) -> Result<()>;

    /// [`ControlPlane::update_shards`], only if `term` is still the controller's term (one
    /// transaction comparing the `controller` key's `mod_revision` too):
    /// [`Error::NotController`] otherwise, and nothing is written.
    async fn update_shards_as(&self, term: u64, updates: &[ShardUpdate]) -> Result<u64>;

    /// Notice of every change under the cluster's prefix made after revision `after`
    /// (give the revision of the map just read, and no change is missed in between).
    async fn watch(&self, after: u64) -> Result<MapWatch>;
}

/// What a [`MapWatch`] has seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WatchEvent {
    /// The map changed at this revision (changes are coalesced: the latest is kept).
    Changed(u64),
    /// The watch ended; the reason.
    Lost(String),
}

/// Notice that the map changed: [`MapWatch::changed`] resolves with the revision of the
/// latest change since the last call. Changes in between are coalesced, so a reader reads
/// the map again rather than replaying events. Dropping it stops the watch.
pub struct MapWatch {
    rx: watch::Receiver<WatchEvent>,
    seen: u64,
    _task: Option<AbortOnDrop>,
}

impl MapWatch {
    pub(crate) fn new(
        rx: watch::Receiver<WatchEvent>,
        after: u64,
        task: Option<tokio::task::JoinHandle<()>>,
    ) -> MapWatch {
        MapWatch {
            rx,
            seen: after,
            _task: task.map(AbortOnDrop),
        }
    }

    /// Waits for a change after the last one returned (or after the watch's start);
    /// returns its revision. [`Error::WatchLost`] once the watch has ended.
    pub async fn changed(&mut self) -> Result<u64> {
        loop {
            match &*self.rx.borrow_and_update() {
                WatchEvent::Changed(revision) if *revision > self.seen => {
                    self.seen = *revision;
                    return Ok(*revision);
                }
                WatchEvent::Changed(_) => {}
                WatchEvent::Lost(reason) => return Err(Error::WatchLost(reason.clone())),
            }
            if self.rx.changed().await.is_err() {
                return Err(Error::WatchLost("the control plane client is gone".into()));
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How an implementation ends a registration.
#[async_trait]
pub(crate) trait Release: Send + Sync {
    /// Revokes the lease and waits until the control plane has done it.
    async fn revoke(self: Box<Self>) -> Result<()>;
    /// Revokes the lease without waiting (from `Drop`).
    fn revoke_soon(self: Box<Self>);
    /// Stops keeping the lease alive; it expires after its TTL, as after a crash.
    fn abandon(self: Box<Self>);
}

/// How long a node's registration is known to last, on this node's monotonic clock: the
/// registration is alive at least until the time its last renewal was *sent* plus the TTL
/// granted, since the control plane starts the TTL only once it receives the renewal. Also
/// the revision at which the node last registered (again), so that a node whose lease ran
/// out can tell whether it has read the map since it came back.
#[derive(Debug)]
pub struct LeaseClock {
    state: std::sync::Mutex<ClockState>,
}

#[derive(Debug, Clone, Copy)]
struct ClockState {
    /// None: the registration does not lapse on its own (the in-memory plane, whose leases
    /// are expired by hand).
    valid_until: Option<Instant>,
    registered_at: u64,
    /// The lease id now (a registration made again has a new lease).
    lease: i64,
}

impl LeaseClock {
    pub(crate) fn new(
        valid_until: Option<Instant>,
        registered_at: u64,
        lease: i64,
    ) -> Arc<LeaseClock> {
        Arc::new(LeaseClock {
            state: std::sync::Mutex::new(ClockState {
                valid_until,
                registered_at,
                lease,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClockState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A renewal sent at `sent` was granted `ttl`.
    pub(crate) fn renewed(&self, sent: Instant, ttl: Duration) {
        let mut s = self.lock();
        let until = sent + ttl;
        s.valid_until = Some(s.valid_until.map_or(until, |v| v.max(until)));
    }

    /// The node registered again, under `lease` granted after `sent`, at `revision`.
    pub(crate) fn registered(&self, lease: i64, sent: Instant, ttl: Duration, revision: u64) {
        let mut s = self.lock();
        s.valid_until = Some(sent + ttl);
        s.registered_at = revision;
        s.lease = lease;
    }

    /// The lease was lost (the control plane said so).
    pub(crate) fn lost(&self) {
        let mut s = self.lock();
        if s.valid_until.is_some() {
            s.valid_until = Some(Instant::now());
        }
    }

    /// Whether the registration is alive for at least `margin` more.
    pub fn held(&self, margin: Duration) -> bool {
        self.lock()
            .valid_until
            .is_none_or(|until| Instant::now() + margin < until)
    }

    /// The revision of the node's latest registration.
    pub fn registered_at(&self) -> u64 {
        self.lock().registered_at
    }
}

/// A node's registration under a lease (see [`ControlPlane::register`]). Dropping it revokes
/// the lease in the background; [`Registration::close`] revokes and waits.
pub struct Registration {
    node: String,
    clock: Arc<LeaseClock>,
    release: Option<Box<dyn Release>>,
}

impl Registration {
    pub(crate) fn new(
        node: String,
        clock: Arc<LeaseClock>,
        release: Box<dyn Release>,
    ) -> Registration {
        Registration {
            node,
            clock,
            release: Some(release),
        }
    }

    /// How long the registration is known to last (kept up to date while it is kept alive).
    pub fn clock(&self) -> Arc<LeaseClock> {
        Arc::clone(&self.clock)
    }

    /// The registered node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The lease id (as the control plane numbers it): the latest one, if the registration
    /// was made again after its lease was lost.
    pub fn lease(&self) -> i64 {
        self.clock.lock().lease
    }

    /// Revokes the lease: the node is no longer alive in the map once this returns.
    pub async fn close(mut self) -> Result<()> {
        match self.release.take() {
            Some(release) => release.revoke().await,
            None => Ok(()),
        }
    }

    /// Stops keeping the lease alive without revoking it, so the registration lapses when
    /// its TTL runs out: what a crash looks like to the rest of the cluster.
    pub fn abandon(mut self) {
        if let Some(release) = self.release.take() {
            release.abandon();
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release.revoke_soon();
        }
    }
}
