//! Shard replication over QUIC: the frame codec ([`frame`]), the primary's serving side
//! ([`primary`]), the replica's pulling and applying side ([`follower`]), checkpoint bootstrap
//! ([`bootstrap`]), oplog trimming, sync-mode acknowledgement and the status report.
//!
//! Every node listens for replication on one QUIC endpoint with mutual TLS ([`tls`]). A
//! replica opens one stream per shard to its primary and pulls; the primary answers only
//! while it takes writes. The oplog, its LSNs and epochs live in the engine; this crate moves
//! entries and decides when to trim, bootstrap and acknowledge. See docs/REPLICATION.md.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod blobs;
pub mod bootstrap;
pub mod error;
pub mod follower;
pub mod link;
pub mod primary;
pub mod state;
pub mod steps;
pub mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chirp_engine::Node;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use chirp_codec::frame;
pub use error::{Error, Result};
use state::ShardState;

/// When a write is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// Once fsynced on the primary (replication lag bounds what a failover loses).
    Async,
    /// Once at least one replica has made it durable too; a timeout is an error.
    Sync,
}

/// How a node replicates.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's name (its certificate names it too).
    pub node_name: String,
    /// The cluster's name; nodes of other clusters are refused.
    pub cluster: String,
    /// Where the QUIC endpoint listens.
    pub listen: SocketAddr,
    /// This node's public HTTP address, named to clients when this node is primary.
    pub api: String,
    /// Directory with `ca.pem`, `node.pem`, `node.key`.
    pub tls_dir: PathBuf,
    /// The primary to follow (None: this node starts as primary).
    pub primary: Option<SocketAddr>,
    /// Acknowledgement mode of writes while primary.
    pub ack: AckMode,
    /// How long a sync-mode write waits for a replica.
    pub sync_timeout: Duration,
    /// Oplog entries a primary keeps per shard at most, whatever replicas have acknowledged.
    pub oplog_retain: u64,
    /// The node's data directory (checkpoints are staged and divergent entries dumped there).
    pub data_dir: PathBuf,
}

/// The task following one shard's primary.
struct Following {
    primary: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// What the cluster map says of one shard, from one node's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPlan {
    /// The shard.
    pub shard: usize,
    /// The shard's epoch in the map: a copy made primary takes it.
    pub epoch: u64,
    /// The replicas a write of the shard waits for while this node is its primary (the
    /// map's sync set).
    pub sync: Vec<String>,
    /// How many of them there must be at least (`min_sync` capped at the shard's replicas).
    pub min_sync: usize,
    /// This node's part in it.
    pub part: Part,
    /// The replication address of the shard's primary (None if the map names none, or the
    /// primary has not said where it listens).
    pub primary: Option<SocketAddr>,
}

/// A node's part in a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// It holds the shard's primary copy.
    Primary,
    /// It holds a copy that follows the primary.
    Replica,
    /// It holds no copy: steps for the shard go to the primary.
    None,
}

/// A node's replication: its endpoint, tasks and state.
pub struct Replication {
    pub(crate) node: Arc<Node>,
    pub(crate) config: Config,
    pub(crate) endpoint: quinn::Endpoint,
    pub(crate) shards: Arc<Vec<ShardState>>,
    /// The shards this node follows, each from its primary.
    following: Mutex<HashMap<usize, Following>>,
    /// One connection per peer node, shared by the shards followed from it and the steps
    /// sent to it.
    pub(crate) upstreams: Mutex<HashMap<SocketAddr, Arc<follower::Upstream>>>,
    /// Where the shards held elsewhere are (replication address of the node to send their
    /// steps to), as the cluster map says.
    pub(crate) routes: Mutex<HashMap<usize, SocketAddr>>,
    /// Serializes promotions.
    promoting: tokio::sync::Mutex<()>,
    /// On a cluster node, the nodes the map admits: a peer whose certificate names another
    /// node is refused. None (a standalone node): any node with a certificate from the CA.
    pub(crate) members: Mutex<Option<std::collections::HashSet<String>>>,
}

impl Replication {
    /// Binds the endpoint and starts serving, following (if `config.primary` is set) and
    /// trimming. Must run inside a tokio runtime.
    pub async fn start(node: Arc<Node>, config: Config) -> Result<Arc<Replication>> {
        let tls = tls::NodeTls::load(&config.tls_dir)?;
        let mut endpoint = quinn::Endpoint::server(tls.server_config()?, config.listen)?;
        endpoint.set_default_client_config(tls.client_config()?);
        // A state for every logical shard; a shard held elsewhere has none of its log here.
        let shards: Vec<ShardState> = (0..node.shard_count())
            .map(|s| ShardState::new(node.log_position(s).map_or(0, |p| p.last_lsn)))
            .collect();
        let shards = Arc::new(shards);
        let hook_shards = Arc::clone(&shards);
        node.shared().set_on_commit(Box::new(move |shard, lsn| {
            if let Some(s) = hook_shards.get(shard) {
                s.on_commit(lsn);
            }
        }));
        let repl = Arc::new(Replication {
            node,
            config,
            endpoint,
            shards,
            following: Mutex::new(HashMap::new()),
            upstreams: Mutex::new(HashMap::new()),
            routes: Mutex::new(HashMap::new()),
            promoting: tokio::sync::Mutex::new(()),
            members: Mutex::new(None),
        });
        // A cluster node reaches the shards it does not hold through their owners.
        if repl.node.config().cluster.is_some() {
            let remote = steps::Steps::new(&repl, tokio::runtime::Handle::current());
            repl.node.set_remote(Arc::new(remote));
        }
        tokio::spawn(primary::accept_loop(Arc::clone(&repl)));
        tokio::spawn(trim_loop(Arc::clone(&repl)));
        if let Some(addr) = repl.config.primary {
            repl.node.demote(&addr.to_string())?;
            for shard in repl.node.placement().local_ids() {
                repl.follow_shard(shard, addr);
            }
        }
        tracing::info!(addr = %repl.local_addr(), node = repl.config.node_name, "replication listening");
        Ok(repl)
    }

    /// The address the QUIC endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.endpoint.local_addr().unwrap_or(self.config.listen)
    }

    /// The storage node this replicates.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// The acknowledgement mode.
    pub fn ack_mode(&self) -> AckMode {
        self.config.ack
    }

    /// Follows one held shard from the primary at `primary` (a replica's copy); following
    /// it from another primary stops that first. Applies never overlap: each shard's apply
    /// lock serializes them.
    pub fn follow_shard(self: &Arc<Self>, shard: usize, primary: SocketAddr) {
        let mut following = lock(&self.following);
        if following.get(&shard).is_some_and(|f| f.primary == primary) {
            return;
        }
        if let Some(old) = following.remove(&shard) {
            let _ = old.stop.send(true);
        }
        let upstream = Arc::clone(
            lock(&self.upstreams)
                .entry(primary)
                .or_insert_with(|| Arc::new(follower::Upstream::new(primary))),
        );
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(follower::run(Arc::clone(self), upstream, shard, rx));
        following.insert(
            shard,
            Following {
                primary,
                stop,
                task,
            },
        );
    }

    /// Brings this node's shards in line with the map: opens the shards it is given, opens
    /// the gate of those it is the primary of (a copy that was following is promoted, with a
    /// new epoch), closes it and follows the primary on the others, and routes the steps of
    /// every shard it is not the primary of to the primary. A copy the map took away is
    /// dropped (see [`Replication::drop_shard`]). Idempotent: applied again on every change.
    pub async fn apply_plan(self: &Arc<Self>, plan: &[ShardPlan]) -> Result<()> {
        for p in plan {
            if let Some(state) = self.shards.get(p.shard) {
                state.saw_map_epoch(p.epoch);
                // The sync set is the primary's: a copy the map does not make primary keeps
                // the set it had (a write still waiting there is refused: it no longer leads).
                if p.part == Part::Primary {
                    state.set_sync(Some(state::SyncSet {
                        members: p.sync.clone(),
                        min: p.min_sync,
                    }));
                }
            }
            match p.part {
                Part::None => self.drop_shard(p.shard).await?,
                Part::Primary | Part::Replica if !self.node.placement().holds(p.shard) => {
                    let node = Arc::clone(&self.node);
                    let shard = p.shard;
                    tokio::task::spawn_blocking(move || node.hold_shard(shard))
                        .await
                        .map_err(|e| Error::Connection(e.to_string()))??;
                    if let (Some(state), Ok(pos)) =
                        (self.shards.get(shard), self.node.log_position(shard))
                    {
                        state.committed.send_replace(pos.last_lsn);
                    }
                }
                Part::Primary | Part::Replica => {}
            }
            match p.part {
                // A primary holds the map's epoch (the map raises it only with a change
                // of primary, so this is a no-op unless the copy missed a round trip).
                Part::Primary
                    if self.node.is_primary_of(p.shard)
                        && self.node.log_position(p.shard)?.epoch >= p.epoch => {}
                Part::Primary => {
                    self.promote_shard_to(p.shard, p.epoch).await?;
                }
                Part::Replica => {
                    if self.node.is_primary_of(p.shard) || self.node.is_fenced(p.shard) {
                        let hint = p.primary.map(|a| a.to_string()).unwrap_or_default();
                        self.node.demote_shard(p.shard, &hint)?;
                    }
                    if let Some(primary) = p.primary {
                        self.follow_shard(p.shard, primary);
                    }
                }
                Part::None => self.drop_shard(p.shard).await?,
            }
            if p.part != Part::Primary {
                if let Some(primary) = p.primary {
                    self.route_shard(p.shard, primary);
                }
            }
        }
        Ok(())
    }

    /// Gives this node's copy of a shard away: stops following it, waits for an apply in
    /// flight, and has the engine close it and move its files aside (`Node::drop_shard`).
    pub async fn drop_shard(self: &Arc<Self>, shard: usize) -> Result<()> {
        let held = self.node.placement().holds(shard);
        if !held && !self.node.has_shard_files(shard) {
            return Ok(());
        }
        self.unfollow_shard(shard).await;
        if let Some(state) = self.shards.get(shard) {
            let _apply = Arc::clone(&state.apply).lock_owned().await;
            state.reset_replicas();
            let node = Arc::clone(&self.node);
            tokio::task::spawn_blocking(move || node.drop_shard(shard))
                .await
                .map_err(|e| Error::Connection(e.to_string()))??;
        }
        Ok(())
    }

    /// Admits as peers only these nodes (by the name their certificate was issued for): the
    /// cluster's members, as the map says. Applied to every new stream.
    pub fn set_members(&self, members: std::collections::HashSet<String>) {
        *lock(&self.members) = Some(members);
    }

    /// Whether a peer whose certificate names `node` may replicate from this node or send it
    /// steps.
    pub(crate) fn admits(&self, node: &str) -> bool {
        lock(&self.members)
            .as_ref()
            .is_none_or(|members| members.contains(node))
    }

    /// Sends the steps of `shard` to the node whose replication endpoint is `addr` (the
    /// shard's primary, for steps that write), as the cluster map says.
    pub fn route_shard(&self, shard: usize, addr: SocketAddr) {
        lock(&self.routes).insert(shard, addr);
    }

    /// Stops following one shard and waits for its task to end.
    pub async fn unfollow_shard(&self, shard: usize) {
        let following = lock(&self.following).remove(&shard);
        if let Some(f) = following {
            let _ = f.stop.send(true);
            let _ = f.task.await;
            tracing::info!(shard, old_primary = %f.primary, "stopped following");
        }
    }

    /// Makes this node's copy of one shard its primary: stops following it, waits for an
    /// apply in flight, raises the shard's epoch and opens its gate. Returns the new epoch.
    /// (On a standalone node the role is the node's: see [`Replication::promote`].)
    pub async fn promote_shard(self: &Arc<Self>, shard: usize) -> Result<u64> {
        let _one = self.promoting.lock().await;
        if self.node.is_primary_of(shard) {
            return Ok(self.node.log_position(shard)?.epoch);
        }
        self.take_over(shard, move |node| node.promote_shard(shard))
            .await
    }

    /// Makes this node's copy of a cluster shard its primary at the map's `epoch`: stops
    /// following it (if it did), waits for an apply in flight, takes the epoch (raising the
    /// copy's to it; see `Node::promote_shard_to`) and opens the gate.
    pub async fn promote_shard_to(self: &Arc<Self>, shard: usize, epoch: u64) -> Result<u64> {
        let _one = self.promoting.lock().await;
        self.take_over(shard, move |node| node.promote_shard_to(shard, epoch))
            .await
    }

    /// The steps of a promotion of one shard around the engine's part (`promote`, run on
    /// the blocking pool): stop following, wait for an apply in flight, forget the replicas'
    /// progress, then publish the last LSN. Called with `promoting` held.
    async fn take_over(
        self: &Arc<Self>,
        shard: usize,
        promote: impl FnOnce(&Node) -> chirp_engine::Result<u64> + Send + 'static,
    ) -> Result<u64> {
        let state = self
            .shards
            .get(shard)
            .ok_or_else(|| Error::Connection(format!("no shard {shard}")))?;
        self.unfollow_shard(shard).await;
        drop(Arc::clone(&state.apply).lock_owned().await);
        state.reset_replicas();
        let node = Arc::clone(&self.node);
        let epoch = tokio::task::spawn_blocking(move || promote(&node))
            .await
            .map_err(|e| Error::Connection(e.to_string()))??;
        state
            .committed
            .send_replace(self.node.log_position(shard)?.last_lsn);
        Ok(epoch)
    }

    /// Waits until each (shard, LSN) is acknowledged as the shard requires: on a cluster
    /// node, by every replica of the shard's sync set (the map's; an empty one waits for
    /// nobody); on a standalone node in sync mode by some replica, in async mode by nobody.
    /// Past the sync timeout it is [`Error::SyncTimeout`]: the write is durable here but not
    /// acknowledged. On a cluster node a write is acknowledged only while this copy still
    /// leads the shard at the epoch the write was made at ([`Error::Replaced`] otherwise):
    /// the sync set a later map gives belongs to a later primary's log.
    pub async fn wait_replicated(&self, writes: &[(usize, u64)]) -> Result<()> {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.config.sync_timeout;
        for &(shard, lsn) in writes {
            let Some(state) = self.shards.get(shard) else {
                continue;
            };
            let mut acked = state.acked.subscribe();
            if state.sync_has(lsn).is_some() {
                // A cluster shard: every member of its sync set, re-read as it changes; any
                // replica's acknowledgement wakes the check. Only while this copy leads the
                // shard at the write's epoch (checked again once the set has it).
                let epoch = self.node.entry_epoch(shard, lsn)?.unwrap_or(0);
                let leads = || {
                    (self.node.is_primary_of(shard) || self.node.is_fenced(shard))
                        && self
                            .node
                            .log_position(shard)
                            .is_ok_and(|p| p.epoch == epoch)
                };
                let replaced = Error::Replaced { shard, lsn, epoch };
                let mut acked = state.acks.subscribe();
                loop {
                    if state.sync_has(lsn) != Some(false) {
                        break;
                    }
                    if !leads() {
                        return Err(replaced);
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(Error::SyncTimeout {
                            shard,
                            lsn,
                            waited_ms: started.elapsed().as_millis() as u64,
                        });
                    }
                    let tick =
                        (tokio::time::Instant::now() + Duration::from_millis(20)).min(deadline);
                    let _ = tokio::time::timeout_at(tick, acked.changed()).await;
                }
                // Acknowledged while this copy leads at the write's epoch; or once the copy
                // handed the shard over in a planned handover with the write in its final log:
                // the new primary held every entry of that log before it took over, and the new
                // sync set is this one with this copy in the new primary's place (see
                // docs/CLUSTER.md, "Planned handover"). The acknowledgements counted here are
                // of this copy's own entries: a member that follows another primary no longer
                // acknowledges to this one.
                if !leads() && !state.is_final(epoch, lsn) {
                    return Err(replaced);
                }
                continue;
            }
            if self.config.ack == AckMode::Async {
                continue;
            }
            let ok = tokio::time::timeout_at(deadline, acked.wait_for(|a| *a >= lsn)).await;
            if !matches!(ok, Ok(Ok(_))) {
                return Err(Error::SyncTimeout {
                    shard,
                    lsn,
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
        }
        Ok(())
    }

    /// Sets the replicas a write of `shard` waits for (the sync keeper widens it to the old
    /// and new sets while a change is written to the map).
    pub fn set_sync(&self, shard: usize, sync: Vec<String>) {
        if let Some(state) = self.shards.get(shard) {
            let min = state.sync().map_or(0, |s| s.min);
            state.set_sync(Some(state::SyncSet { members: sync, min }));
        }
    }

    /// Each replica of `shard` this node (its primary) has heard from: acknowledged LSN and
    /// whether its stream is up.
    pub fn replica_progress(&self, shard: usize) -> Vec<(String, u64, bool)> {
        self.shards.get(shard).map_or_else(Vec::new, |s| {
            s.replicas()
                .into_iter()
                .map(|(name, p)| (name, p.acked, p.connected))
                .collect()
        })
    }

    /// Waits until the replica named `node` has acknowledged `lsn` of `shard` (it holds
    /// every entry up to it); false if it has not within `timeout`.
    pub async fn wait_acked_by(
        &self,
        shard: usize,
        node: &str,
        lsn: u64,
        timeout: Duration,
    ) -> bool {
        let Some(state) = self.shards.get(shard) else {
            return false;
        };
        let has = || state.replicas().get(node).is_some_and(|p| p.acked >= lsn);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut acks = state.acked.subscribe();
        while !has() {
            // Any replica's acknowledgement wakes us; the poll bounds a missed one.
            let tick = tokio::time::Instant::now() + Duration::from_millis(20);
            if tick >= deadline {
                return has();
            }
            let _ = tokio::time::timeout_at(tick, acks.changed()).await;
        }
        true
    }

    /// Records that `shard`'s log on this copy, at its current epoch, ends at `last` for a
    /// planned handover (see `ShardState::set_final`).
    pub fn set_final(&self, shard: usize, last: u64) -> Result<()> {
        let epoch = self.node.log_position(shard)?.epoch;
        if let Some(state) = self.shards.get(shard) {
            state.set_final(epoch, last);
        }
        Ok(())
    }

    /// Waits until every member of `shard`'s sync set has acknowledged `lsn` (so every write
    /// up to it is acknowledged); false if that did not happen within `timeout`.
    pub async fn wait_sync_acked(&self, shard: usize, lsn: u64, timeout: Duration) -> bool {
        let Some(state) = self.shards.get(shard) else {
            return false;
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut acks = state.acks.subscribe();
        while state.sync_has(lsn) == Some(false) {
            let tick = tokio::time::Instant::now() + Duration::from_millis(20);
            if tick >= deadline {
                return state.sync_has(lsn) != Some(false);
            }
            let _ = tokio::time::timeout_at(tick, acks.changed()).await;
        }
        true
    }

    /// Makes this node the primary: stops following, waits for an apply in flight, raises
    /// every shard's epoch and takes writes. Returns the new epochs.
    pub async fn promote(self: &Arc<Self>) -> Result<Vec<u64>> {
        let _one = self.promoting.lock().await;
        if self.node.is_writable() {
            return self
                .node
                .placement()
                .local_ids()
                .into_iter()
                .map(|s| Ok(self.node.log_position(s)?.epoch))
                .collect();
        }
        let followed: Vec<usize> = lock(&self.following).keys().copied().collect();
        for shard in followed {
            self.unfollow_shard(shard).await;
        }
        for s in self.shards.iter() {
            drop(Arc::clone(&s.apply).lock_owned().await);
            s.reset_replicas();
        }
        let node = Arc::clone(&self.node);
        let epochs = tokio::task::spawn_blocking(move || node.promote())
            .await
            .map_err(|e| Error::Connection(e.to_string()))??;
        for s in self.node.placement().local_ids() {
            self.shards[s]
                .committed
                .send_replace(self.node.log_position(s)?.last_lsn);
        }
        Ok(epochs)
    }

    /// A JSON report of every shard's replication: role, epoch, LSNs and lag.
    pub fn status(&self) -> serde_json::Value {
        let following: HashMap<usize, String> = lock(&self.following)
            .iter()
            .map(|(&s, f)| (s, f.primary.to_string()))
            .collect();
        // The node's upstream, when it follows every shard it holds from one primary.
        let mut upstreams: Vec<&String> = following.values().collect();
        upstreams.sort();
        upstreams.dedup();
        let primary = (upstreams.len() == 1).then(|| upstreams[0].clone());
        let writable = self.node.is_writable();
        let shards: Vec<serde_json::Value> = self
            .node
            .placement()
            .local_ids()
            .into_iter()
            .map(|s| {
                let state = &self.shards[s];
                let writable = self.node.is_primary_of(s);
                let pos = self.node.log_position(s).ok();
                let last = pos.map_or(0, |p| p.last_lsn);
                let mut out = serde_json::json!({
                    "shard": s,
                    "epoch": pos.map_or(0, |p| p.epoch),
                    "last_lsn": last,
                    "oldest_lsn": self.node.oldest_lsn(s).unwrap_or(0),
                    "bytes": self.node.shard_bytes(s).unwrap_or(0),
                    "role": if writable { "primary" } else { "replica" },
                });
                if writable {
                    let replicas: Vec<serde_json::Value> = state
                        .replicas()
                        .into_iter()
                        .map(|(name, p)| {
                            serde_json::json!({
                                "node": name,
                                "acked_lsn": p.acked,
                                "connected": p.connected,
                                "lag_lsn": last.saturating_sub(p.acked),
                                "lag_seconds": state.age_after(p.acked, last).as_secs_f64(),
                            })
                        })
                        .collect();
                    out["replicas"] = serde_json::json!(replicas);
                } else {
                    let f = state.follow();
                    out["connected"] = serde_json::json!(f.connected);
                    out["primary_last_lsn"] = serde_json::json!(f.primary_last_lsn);
                    out["lag_lsn"] = serde_json::json!(f.primary_last_lsn.saturating_sub(last));
                    out["lag_seconds"] = serde_json::json!(f
                        .behind_since
                        .map_or(0.0, |t| t.elapsed().as_secs_f64()));
                    out["bootstraps"] = serde_json::json!(f.bootstraps);
                    out["checkpoint_bytes"] = serde_json::json!(f.checkpoint_bytes);
                    out["following"] = serde_json::json!(following.get(&s));
                    out["stopped"] = serde_json::json!(f.stopped);
                }
                out
            })
            .collect();
        serde_json::json!({
            "node": self.config.node_name,
            "role": if writable { "primary" } else { "replica" },
            "ack": match self.config.ack { AckMode::Async => "async", AckMode::Sync => "sync" },
            "replication_addr": self.local_addr().to_string(),
            "following": primary,
            "primary_api": if writable { self.config.api.clone() } else { self.node.shared().primary_hint() },
            "shards": shards,
        })
    }

    /// Stops following and closes the endpoint.
    pub async fn shutdown(&self) {
        let followed: Vec<usize> = lock(&self.following).keys().copied().collect();
        for shard in followed {
            self.unfollow_shard(shard).await;
        }
        self.endpoint.close(0u32.into(), b"shutting down");
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every second, on each shard this node is the primary of, drops oplog entries every registered replica has, keeping at
/// most `oplog_retain` per shard whatever they have.
async fn trim_loop(repl: Arc<Replication>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        for (s, state) in repl.shards.iter().enumerate() {
            if !repl.node.is_primary_of(s) {
                continue;
            }
            let Ok(pos) = repl.node.log_position(s) else {
                continue;
            };
            let cap_from = pos.last_lsn.saturating_sub(repl.config.oplog_retain) + 1;
            let keep_from = state
                .min_acked()
                .map_or(cap_from, |a| (a + 1).max(cap_from));
            let node = Arc::clone(&repl.node);
            let r = tokio::task::spawn_blocking(move || node.trim_oplog(s, keep_from)).await;
            if let Ok(Err(e)) = r {
                tracing::warn!(shard = s, error = %e, "trimming the oplog failed");
            }
        }
    }
}
