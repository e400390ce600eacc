//! Joining a cluster: `chirp serve --etcd URLS --cluster NAME --node-name N`. Flags and
//! environment only, like replication's (whose `--cluster` and `--node-name` name the node
//! here too): they are not part of the TOML config.
//!
//! A node with `--etcd` refuses to start unless the cluster exists (its `config` is in
//! etcd), opens its data dir as a cluster node of the cluster's shard count, registers
//! `nodes/<N>` with its addresses under a lease kept alive every quarter of its TTL, and
//! follows the map: [`Membership::map`] always holds the latest one read, and every map
//! (the first one before the node serves) is applied by [`follow_map`]: the shards it names
//! this node for are opened in the part it names (primary, or a replica following the
//! primary), the steps of the others are routed to their primaries, and the public
//! addresses of the primaries feed request forwarding. Without `--etcd` none of this runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::HashMap;
use std::net::SocketAddr;

use chirp_cluster::etcd::parse_endpoints;
use chirp_engine::ShardId;
use chirp_replication::{Part, Replication, ShardPlan};

use crate::forward::Owners;
use chirp_cluster::plane::LeaseClock;
use chirp_cluster::{
    ClusterMap, ControlPlane, Error, EtcdControlPlane, Handover, NodeInfo, Registration,
    ShardAssignment, ShardUpdate, VersionedShard,
};
use tokio::sync::{watch, Mutex};

/// The cluster flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ClusterArgs {
    /// etcd endpoints of the cluster's control plane, comma-separated
    /// (http://host:port,...); the node then joins cluster --cluster as --node-name.
    /// Without it the node runs alone.
    #[arg(long, env = "CHIRP_ETCD")]
    pub etcd: Option<String>,
    /// Seconds the node's registration outlives its last keep-alive: how long a crashed
    /// node still looks alive. Tests shorten it.
    #[arg(long, env = "CHIRP_LEASE_TTL_SECS", default_value_t = 10)]
    pub lease_ttl_secs: u64,
}

impl Default for ClusterArgs {
    /// The same defaults as the flags (no cluster).
    fn default() -> Self {
        ClusterArgs {
            etcd: None,
            lease_ttl_secs: 10,
        }
    }
}

/// Connects to the control plane and checks that the cluster exists. `None` without
/// `--etcd`.
pub async fn connect(
    args: &ClusterArgs,
    cluster: &str,
) -> Result<Option<Arc<dyn ControlPlane>>, Error> {
    let Some(urls) = &args.etcd else {
        return Ok(None);
    };
    let plane = EtcdControlPlane::connect(&parse_endpoints(urls)?, cluster).await?;
    if plane.config().await?.is_none() {
        return Err(Error::NoConfig {
            cluster: cluster.to_string(),
        });
    }
    Ok(Some(Arc::new(plane)))
}

/// This node's place in the cluster: the control plane, its registration and the latest
/// map. What the engine's placement layer will be fed from.
pub struct Membership {
    /// The control plane.
    pub plane: Arc<dyn ControlPlane>,
    /// The latest map read (replaced whenever the control plane reports a change).
    pub map: watch::Receiver<Arc<ClusterMap>>,
    registration: Mutex<Option<Registration>>,
    follower: tokio::task::JoinHandle<()>,
    /// How long the registration is known to last.
    clock: Arc<LeaseClock>,
    /// The lease's TTL.
    ttl: Duration,
    /// The revision of the last map applied to this node.
    applied: Arc<AtomicU64>,
}

impl Membership {
    /// Registers `node` under a lease of `ttl` and starts following the map.
    ///
    /// A name still held by a live lease is waited for up to one TTL (plus a second): a
    /// node restarted right after a crash finds its old registration until it lapses.
    pub async fn join(
        plane: Arc<dyn ControlPlane>,
        node: NodeInfo,
        ttl: Duration,
    ) -> Result<Arc<Membership>, Error> {
        let deadline = Instant::now() + ttl + Duration::from_secs(1);
        let registration = loop {
            match plane.register(&node, ttl).await {
                Err(Error::AlreadyRegistered { .. }) if Instant::now() < deadline => {
                    tracing::info!(node = %node.name, "the name is still registered; waiting for that lease to lapse");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                other => break other?,
            }
        };
        let first = plane.read_map().await?;
        tracing::info!(
            node = %node.name,
            cluster = plane.cluster(),
            revision = first.revision,
            shards = first.shards.len(),
            "joined the cluster"
        );
        let (tx, map) = watch::channel(Arc::new(first));
        let follower = tokio::spawn(follow(Arc::clone(&plane), tx));
        Ok(Arc::new(Membership {
            plane,
            map,
            clock: registration.clock(),
            registration: Mutex::new(Some(registration)),
            follower,
            ttl,
            applied: Arc::new(AtomicU64::new(0)),
        }))
    }

    /// Whether this node may serve its primary copies: its registration is alive for at
    /// least [`lease_margin`] more on this node's monotonic clock, and it has applied a map
    /// read since it last registered (a node whose lease ran out and that registered again
    /// may have missed a failover until then). Safety never depends on it (acknowledgements
    /// need the sync set at the current epoch); it bounds how stale a read can be.
    pub fn lease_check(&self) -> chirp_engine::LeaseCheck {
        let (clock, applied) = (Arc::clone(&self.clock), Arc::clone(&self.applied));
        let margin = lease_margin(self.ttl);
        Box::new(move || {
            clock.held(margin) && applied.load(Ordering::SeqCst) >= clock.registered_at()
        })
    }

    /// The lease this node is registered under (while it is).
    pub async fn lease(&self) -> Option<i64> {
        self.registration.lock().await.as_ref().map(|r| r.lease())
    }

    /// Leaves the cluster: revokes the registration (the node is no longer alive in the
    /// map) and stops following the map.
    pub async fn leave(&self) {
        self.follower.abort();
        if let Some(reg) = self.registration.lock().await.take() {
            // An unreachable etcd must not hold up the shutdown: the lease lapses anyway.
            match tokio::time::timeout(Duration::from_secs(5), reg.close()).await {
                Ok(Ok(())) => tracing::info!("left the cluster"),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "revoking the node's lease; it lapses after its TTL")
                }
                Err(_) => {
                    tracing::warn!("etcd did not answer; the node's lease lapses after its TTL")
                }
            }
        }
    }
}

/// How long before its registration could expire a node stops serving its primary copies:
/// 2 s, or a fifth of a shorter TTL (a clock running fast by up to that share, a request
/// already past the check).
pub fn lease_margin(ttl: Duration) -> Duration {
    (ttl / 5).min(Duration::from_secs(2))
}

/// Keeps `tx` at the latest map: waits for a change, reads the map again. When the watch
/// ends (etcd restarted, history compacted) or a read fails, a new watch starts from the
/// last map read, so a change in between is reported at once rather than missed.
async fn follow(plane: Arc<dyn ControlPlane>, tx: watch::Sender<Arc<ClusterMap>>) {
    loop {
        let after = tx.borrow().revision;
        match plane.watch(after).await {
            Ok(mut changes) => loop {
                if let Err(e) = changes.changed().await {
                    tracing::warn!(error = %e, "the map watch ended; watching again");
                    break;
                }
                match plane.read_map().await {
                    Ok(map) => {
                        tracing::debug!(revision = map.revision, "the map changed");
                        tx.send_replace(Arc::new(map));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the map; watching again");
                        break;
                    }
                }
            },
            Err(e) => tracing::warn!(error = %e, "watching the map; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// What a map says of each shard from `me`'s point of view, and where each shard's primary
/// serves the public API. A node's live registration gives its addresses; a member's record
/// stands in while it is down.
pub fn plan_of(map: &ClusterMap, me: &str) -> (Vec<ShardPlan>, HashMap<ShardId, String>) {
    let repl_of = |node: &str| -> Option<SocketAddr> {
        let live = map.nodes.get(node).and_then(|n| n.repl.clone());
        live.or_else(|| map.members.get(node).and_then(|m| m.repl.clone()))?
            .parse()
            .ok()
    };
    let api_of = |node: &str| -> Option<String> {
        map.nodes
            .get(node)
            .map(|n| n.api.clone())
            .or_else(|| map.members.get(node).map(|m| m.api.clone()))
    };
    let mut plans = Vec::with_capacity(map.shards.len());
    let mut owners = HashMap::new();
    for (&id, shard) in &map.shards {
        let a = &shard.assignment;
        let part = if a.primary == me {
            Part::Primary
        } else if a.replicas.iter().chain(&a.learners).any(|n| n == me) {
            Part::Replica
        } else {
            Part::None
        };
        plans.push(ShardPlan {
            shard: id as ShardId,
            epoch: a.epoch,
            sync: a.sync.clone(),
            min_sync: map
                .config
                .map_or(0, |c| c.min_sync as usize)
                .min(a.replicas.len()),
            part,
            primary: repl_of(&a.primary),
        });
        if let Some(api) = api_of(&a.primary) {
            owners.insert(id as ShardId, api);
        }
    }
    (plans, owners)
}

/// Applies the current map now, then every later one, until the node stops. A map that
/// cannot be applied (a shard that fails to open) is logged and tried again at the next
/// change.
pub async fn follow_map(
    membership: Arc<Membership>,
    repl: Arc<Replication>,
    owners: Arc<Owners>,
    me: String,
) -> Result<tokio::task::JoinHandle<()>, chirp_replication::Error> {
    let mut maps = membership.map.clone();
    repl.node()
        .shared()
        .set_lease_check(membership.lease_check());
    let applier = Arc::new(Applier {
        plane: Arc::clone(&membership.plane),
        repl,
        owners,
        me,
        handovers: std::sync::Mutex::new(HashMap::new()),
        sync_changes: std::sync::Mutex::new(HashMap::new()),
        applied: Arc::clone(&membership.applied),
    });
    let first = Arc::clone(&maps.borrow_and_update());
    applier.apply(&first).await?;
    let keeper = tokio::spawn(Arc::clone(&applier).keep_sync(membership.map.clone()));
    Ok(tokio::spawn(async move {
        let _keeper = AbortOnDrop(keeper);
        while maps.changed().await.is_ok() {
            let map = Arc::clone(&maps.borrow_and_update());
            if let Err(e) = applier.apply(&map).await {
                tracing::error!(revision = map.revision, error = %e, "applying the cluster map failed");
            }
        }
    }))
}

/// Applies maps to this node, and carries out the handovers asked of it.
struct Applier {
    plane: Arc<dyn ControlPlane>,
    repl: Arc<Replication>,
    owners: Arc<Owners>,
    me: String,
    /// Shards this node is handing over, with the `mod_revision` of the request: their gate
    /// stays as the handover left it until a map without the request comes.
    handovers: std::sync::Mutex<HashMap<ShardId, u64>>,
    /// Sync-set changes this node (the primary) is writing to the map, by shard: until a
    /// map newer than the one the change was decided on arrives, writes wait for the old
    /// and the new members both, so a write acknowledged meanwhile is on every member of
    /// whichever set the map ends up with.
    sync_changes: std::sync::Mutex<HashMap<ShardId, SyncChange>>,
    /// The revision of the last map applied (see [`Membership::lease_check`]).
    applied: Arc<AtomicU64>,
}

/// A sync-set change being written (see [`Applier::sync_changes`]).
#[derive(Debug, Clone)]
struct SyncChange {
    /// The `mod_revision` of the shard the change was decided on.
    base: u64,
    /// The old and the new members.
    union: Vec<String>,
}

/// How long a member of a sync set may stay behind before its primary replaces it with a
/// replica that holds every write (never below `min_sync`: with no such replica, writes wait
/// and then fail with 503).
pub const SYNC_GRACE: Duration = Duration::from_secs(2);

/// How long a handover waits, once its target holds the last LSN, for the rest of the sync
/// set to acknowledge it too (see `Applier::try_hand_over`).
const SYNC_ACK_GRACE: Duration = Duration::from_secs(1);

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Applier {
    async fn apply(self: &Arc<Self>, map: &ClusterMap) -> Result<(), chirp_replication::Error> {
        let (mut plans, api) = plan_of(map, &self.me);
        self.owners.replace(api);
        // Replication and steps are served to the members only (a removed node, or one never
        // added, is refused even with a certificate from the cluster's CA).
        self.repl.set_members(
            map.members
                .values()
                .filter(|m| m.state != chirp_cluster::MemberState::Removed)
                .map(|m| m.name.clone())
                .collect(),
        );
        let handing: Vec<ShardId> = {
            let mut handovers = lock(&self.handovers);
            // A request that is gone (done, or called off) no longer holds its shard back.
            handovers.retain(|&s, rev| {
                map.shards
                    .get(&(s as u32))
                    .is_some_and(|v| v.mod_revision == *rev && v.assignment.primary == self.me)
            });
            for (&id, shard) in &map.shards {
                let a = &shard.assignment;
                let Some(h) = &a.handover else { continue };
                if a.primary != self.me || handovers.contains_key(&(id as ShardId)) {
                    continue;
                }
                handovers.insert(id as ShardId, shard.mod_revision);
                tokio::spawn(Arc::clone(self).hand_over(shard.clone(), h.clone()));
            }
            handovers.keys().copied().collect()
        };
        plans.retain(|p| !handing.contains(&p.shard));
        {
            let mut changes = lock(&self.sync_changes);
            changes.retain(|&s, change| {
                map.shards
                    .get(&(s as u32))
                    .is_some_and(|v| v.mod_revision <= change.base)
            });
            for p in &mut plans {
                if let Some(change) = changes.get(&p.shard) {
                    p.sync = union(&p.sync, &change.union);
                }
            }
        }
        self.repl.apply_plan(&plans).await?;
        self.applied.fetch_max(map.revision, Ordering::SeqCst);
        tracing::info!(
            revision = map.revision,
            primary = plans.iter().filter(|p| p.part == Part::Primary).count(),
            replica = plans.iter().filter(|p| p.part == Part::Replica).count(),
            handing_over = handing.len(),
            "applied the cluster map"
        );
        Ok(())
    }

    /// A planned handover of a shard this node is the primary of: close the gate, wait
    /// until the target has acknowledged the last LSN, then make it the primary at the next
    /// epoch in one transaction that compares the shard's `mod_revision` (so a request
    /// called off in between changes nothing). On failure the request is removed, which
    /// brings a map in which this node opens its gate again.
    async fn hand_over(self: Arc<Self>, shard: VersionedShard, handover: Handover) {
        let id = shard.id as ShardId;
        let outcome = self.try_hand_over(&shard, &handover).await;
        let update = match &outcome {
            Ok(()) => shard.assignment.handed_over(&handover.to),
            Err(why) => {
                tracing::warn!(shard = id, to = %handover.to, reason = %why, "handover called off; taking writes again");
                ShardAssignment {
                    handover: None,
                    ..shard.assignment.clone()
                }
            }
        };
        let written = self
            .plane
            .update_shards(&[ShardUpdate {
                id: shard.id,
                expected_mod_revision: shard.mod_revision,
                assignment: update,
            }])
            .await;
        match (&outcome, written) {
            (Ok(()), Ok(revision)) => {
                tracing::info!(shard = id, to = %handover.to, revision, "handed over")
            }
            (_, Err(e)) => {
                tracing::warn!(shard = id, error = %e, "writing the handover's outcome failed");
                // Nothing changed in the map: this node is still the primary of record.
                lock(&self.handovers).remove(&id);
                if let Err(e) = self.repl.node().set_shard_primary(id, true) {
                    tracing::error!(shard = id, error = %e, "reopening the gate failed");
                }
            }
            (Err(_), Ok(_)) => {}
        }
    }

    /// Keeps the sync sets of the shards this node is the primary of: a member that has been
    /// behind for [`SYNC_GRACE`] (or disconnected) is replaced by a replica that holds every
    /// write so far, and a set short of `min_sync` takes such replicas in; each change is one
    /// transaction comparing the shard's `mod_revision`. A lagging member is kept when no
    /// replica can take its place: the set never shrinks below `min_sync`.
    async fn keep_sync(self: Arc<Self>, maps: watch::Receiver<Arc<ClusterMap>>) {
        let mut behind: HashMap<(ShardId, String), Instant> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let map = Arc::clone(&maps.borrow());
            let Some(config) = map.config else { continue };
            for (&id, shard) in &map.shards {
                let s = id as ShardId;
                let a = &shard.assignment;
                let node = self.repl.node();
                if a.primary != self.me || a.handover.is_some() || !node.is_primary_of(s) {
                    continue;
                }
                if lock(&self.sync_changes).contains_key(&s) {
                    continue;
                }
                let Ok(pos) = node.log_position(s) else {
                    continue;
                };
                let progress = self.repl.replica_progress(s);
                let now = Instant::now();
                let holds_all = |n: &str| {
                    progress
                        .iter()
                        .any(|(name, acked, up)| name == n && *up && *acked >= pos.last_lsn)
                };
                for r in &a.replicas {
                    if holds_all(r) {
                        behind.remove(&(s, r.clone()));
                    } else {
                        behind.entry((s, r.clone())).or_insert(now);
                    }
                }
                let lagging = |n: &String| {
                    behind
                        .get(&(s, n.clone()))
                        .is_some_and(|t| now.duration_since(*t) >= SYNC_GRACE)
                };
                let next = next_sync(a, config.min_sync as usize, lagging, holds_all);
                if sorted(&next) == sorted(&a.sync) {
                    continue;
                }
                let change = SyncChange {
                    base: shard.mod_revision,
                    union: union(&a.sync, &next),
                };
                self.repl.set_sync(s, change.union.clone());
                lock(&self.sync_changes).insert(s, change);
                let update = ShardAssignment {
                    sync: next.clone(),
                    ..a.clone()
                };
                match self
                    .plane
                    .update_shards(&[ShardUpdate {
                        id,
                        expected_mod_revision: shard.mod_revision,
                        assignment: update,
                    }])
                    .await
                {
                    Ok(revision) => {
                        tracing::info!(shard = s, old = ?a.sync, new = ?next, revision, "sync set changed")
                    }
                    // Not written: the map stays as it was, which the next map applied says.
                    Err(Error::Conflict { .. }) => {
                        lock(&self.sync_changes).remove(&s);
                    }
                    // Perhaps written: writes keep waiting for both until a newer map tells.
                    Err(e) => tracing::warn!(shard = s, error = %e, "writing a sync set change"),
                }
            }
        }
    }

    async fn try_hand_over(&self, shard: &VersionedShard, h: &Handover) -> Result<(), String> {
        let id = shard.id as ShardId;
        if !shard.assignment.replicas.contains(&h.to) {
            return Err(format!("{} is not a replica of shard {id}", h.to));
        }
        let node = Arc::clone(self.repl.node());
        let last = tokio::task::spawn_blocking(move || node.fence_shard(id))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        self.repl.set_final(id, last).map_err(|e| e.to_string())?;
        let timeout = Duration::from_millis(h.timeout_ms);
        let started = tokio::time::Instant::now();
        if !self.repl.wait_acked_by(id, &h.to, last, timeout).await {
            return Err(format!(
                "{} did not acknowledge LSN {last} within {} ms",
                h.to, h.timeout_ms
            ));
        }
        // The writes waiting here for the sync set are acknowledged once every member has
        // them: give the other members a moment (healthy ones take milliseconds), so those
        // writes are answered 201 before the map moves on (after it, this copy no longer
        // leads and answers 503, though the new primary holds them). Not a condition of the
        // handover: a member that is slow or gone only costs those writes their
        // acknowledgement, as it would have, and the gate stays closed at most a second more.
        let rest = timeout
            .saturating_sub(started.elapsed())
            .min(SYNC_ACK_GRACE);
        if !self.repl.wait_sync_acked(id, last, rest).await {
            tracing::warn!(shard = id, last, "handing over before the whole sync set acknowledged the last LSN; writes still waiting answer 503");
        }
        Ok(())
    }
}

/// The sync set a primary wants for `a`: its members that are not `lagging`, topped up to
/// `min_sync` (capped at the replica count) with replicas that `holds_all` writes, and, if
/// still short, with the lagging members again (never fewer than `min_sync`); and the
/// target of a move once it `holds_all`.
pub fn next_sync(
    a: &ShardAssignment,
    min_sync: usize,
    lagging: impl Fn(&String) -> bool,
    holds_all: impl Fn(&str) -> bool,
) -> Vec<String> {
    let want = min_sync.min(a.replicas.len());
    let mut next: Vec<String> = a
        .sync
        .iter()
        .filter(|n| a.replicas.contains(n) && !lagging(n))
        .cloned()
        .collect();
    for r in &a.replicas {
        if next.len() >= want {
            break;
        }
        if !next.contains(r) && holds_all(r) {
            next.push(r.clone());
        }
    }
    for n in &a.sync {
        if next.len() >= want {
            break;
        }
        if !next.contains(n) && a.replicas.contains(n) {
            next.push(n.clone());
        }
    }
    // A copy moving in joins as soon as it holds every write (beyond `min_sync`): from then
    // on it holds every acknowledged write, as the move's cutover needs.
    if let Some(m) = &a.moving {
        let to = &m.to;
        if want > 0 && a.replicas.contains(to) && !next.contains(to) && holds_all(to) {
            next.push(to.clone());
        }
    }
    next
}

fn union(a: &[String], b: &[String]) -> Vec<String> {
    let mut out = a.to_vec();
    for n in b {
        if !out.contains(n) {
            out.push(n.clone());
        }
    }
    out
}

fn sorted(names: &[String]) -> Vec<String> {
    let mut v = names.to_vec();
    v.sort();
    v
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How often a node campaigns for controller and, while elected, runs a round.
const CONTROLLER_TICK: Duration = Duration::from_secs(1);

/// Asks nodes over their public API: `/health` answers, `/replication` gives positions.
struct HttpProbe;

#[async_trait::async_trait]
impl chirp_cluster::controller::Probe for HttpProbe {
    /// It answers `/health` and holds its lease: a node cut off from etcd answers, but has
    /// stopped serving the shards it leads, which are better failed over.
    async fn answers(&self, _name: &str, api: &str) -> bool {
        crate::forward::get_json(api, "/health", Duration::from_secs(1))
            .await
            .is_some_and(|(status, health)| status == 200 && health["lease"] != "lapsed")
    }

    async fn position(&self, _name: &str, api: &str, shard: u32) -> Option<(u64, u64)> {
        let mine = shard_report(api, shard).await?;
        Some((mine["epoch"].as_u64()?, mine["last_lsn"].as_u64()?))
    }

    async fn shard_bytes(&self, _name: &str, api: &str, shard: u32) -> Option<u64> {
        shard_report(api, shard).await?["bytes"].as_u64()
    }
}

/// A node's `/replication` entry for `shard`, asked at its public API `api`.
async fn shard_report(api: &str, shard: u32) -> Option<serde_json::Value> {
    let (status, report) =
        crate::forward::get_json(api, "/replication", Duration::from_secs(2)).await?;
    if status != 200 {
        return None;
    }
    report["shards"]
        .as_array()?
        .iter()
        .find(|s| s["shard"] == shard)
        .cloned()
}

/// Campaigns for controller every second (any node may hold the election, under its
/// registration's lease) and, while elected, runs a round of
/// [`chirp_cluster::controller::Controller`]: failing over the shards of dead primaries and
/// making caught-up learners replicas.
pub fn run_controller(membership: Arc<Membership>, me: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let probe = HttpProbe;
        let mut tick = tokio::time::interval(CONTROLLER_TICK);
        let mut was = false;
        loop {
            tick.tick().await;
            let Some(lease) = membership.lease().await else {
                return;
            };
            // Only an active member runs for controller (a node not yet added does not); one
            // being drained or removed gives the election up, or nobody would run it.
            let (member, holds) = {
                let map = membership.map.borrow();
                (
                    map.members
                        .get(&me)
                        .is_some_and(|m| m.state == chirp_cluster::MemberState::Active),
                    map.controller.clone().filter(|c| c.name == me),
                )
            };
            if !member {
                if let Some(c) = holds {
                    match membership.plane.resign(c.term).await {
                        Ok(()) => {
                            tracing::info!(node = %me, term = c.term, "no longer an active member; resigned as controller")
                        }
                        Err(e) => tracing::warn!(error = %e, "resigning as controller"),
                    }
                    was = false;
                }
                continue;
            }
            let held = match membership.plane.campaign(&me, lease).await {
                Ok(held) => held,
                Err(e) => {
                    tracing::debug!(error = %e, "campaigning for controller");
                    continue;
                }
            };
            let elected = held.name == me;
            if elected != was {
                tracing::info!(node = %me, term = held.term, elected, "controller election");
                was = elected;
            }
            if !elected {
                continue;
            }
            let controller = chirp_cluster::controller::Controller {
                plane: &*membership.plane,
                probe: &probe,
                policy: chirp_cluster::controller::Policy::default(),
            };
            if let Err(e) = controller.round(held.term).await {
                tracing::warn!(error = %e, "controller round");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(sync: &[&str]) -> ShardAssignment {
        ShardAssignment {
            epoch: 1,
            primary: "p".into(),
            replicas: vec!["a".into(), "b".into(), "c".into()],
            sync: sync.iter().map(|s| s.to_string()).collect(),
            learners: vec![],
            handover: None,
            moving: None,
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_lagging_member_is_replaced_only_by_a_replica_holding_everything() {
        let a = shard(&["a"]);
        // a lags, b holds every write: b takes its place.
        let next = next_sync(&a, 1, |n| n == "a", |n| n == "b");
        assert_eq!(next, names(&["b"]));
        // a lags and nobody holds every write: a stays (never below min_sync).
        let next = next_sync(&a, 1, |n| n == "a", |_| false);
        assert_eq!(next, names(&["a"]));
        // Nobody lags: unchanged, even if others are caught up.
        let next = next_sync(&a, 1, |_| false, |_| true);
        assert_eq!(next, names(&["a"]));
    }

    #[test]
    fn a_short_set_is_topped_up_and_capped_at_the_replicas() {
        let next = next_sync(&shard(&[]), 2, |_| false, |n| n != "a");
        assert_eq!(next, names(&["b", "c"]));
        let next = next_sync(&shard(&["a"]), 5, |_| false, |_| true);
        assert_eq!(next, names(&["a", "b", "c"]));
        // min_sync 0: nothing to wait for, a member lagging or not.
        assert!(next_sync(&shard(&["a"]), 0, |_| true, |_| true).is_empty());
        // A member that is no longer a replica leaves.
        let next = next_sync(&shard(&["x"]), 1, |_| false, |n| n == "c");
        assert_eq!(next, names(&["c"]));
    }

    #[test]
    fn a_move_target_joins_once_it_holds_every_write() {
        let mut a = shard(&["a"]);
        a.moving = Some(chirp_cluster::Move {
            from: "b".into(),
            to: "c".into(),
            primary: true,
            state: chirp_cluster::MoveState::CatchingUp,
            started_ms: 0,
            attempts: 0,
        });
        assert_eq!(next_sync(&a, 1, |_| false, |n| n != "c"), names(&["a"]));
        assert_eq!(next_sync(&a, 1, |_| false, |_| true), names(&["a", "c"]));
        // Async shards wait for nobody, a move's target included.
        a.sync.clear();
        assert!(next_sync(&a, 0, |_| false, |_| true).is_empty());
    }
}
