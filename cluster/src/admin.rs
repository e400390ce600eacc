//! Operator steps over a [`ControlPlane`]: adding nodes (and creating the shard map with the
//! first ones) and the status report. `chirpctl` is a thin command line over these.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::map::{ClusterMap, Handover, Member, MemberState, ShardUpdate, VersionedShard};
use crate::placement::initial_placement;
use crate::plane::ControlPlane;
use crate::{check_name, Error, Result};

/// What [`add_nodes`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddReport {
    /// The nodes written to `members/`, in name order.
    pub added: Vec<String>,
    /// Shards created by this call: the whole map when these were the cluster's first
    /// nodes, else 0 (later nodes hold nothing until a rebalance moves shards to them).
    pub shards_created: u32,
    /// The revision after the last write.
    pub revision: u64,
}

/// Adds `names` as active members, with the addresses each registered under `nodes/<name>`
/// (so each must be running and registered). If the cluster has no shards yet, creates the
/// whole map over these nodes with [`initial_placement`] in one transaction; a concurrent
/// creation makes that transaction fail with [`Error::Conflict`] and nothing of the map is
/// written (the members stay written: adding them again is harmless).
pub async fn add_nodes(plane: &dyn ControlPlane, names: &[String]) -> Result<AddReport> {
    if names.is_empty() {
        return Err(Error::Invalid("name at least one node to add".into()));
    }
    let mut names: Vec<String> = names.to_vec();
    names.sort();
    names.dedup();
    for name in &names {
        check_name("node", name)?;
    }
    let map = plane.read_map().await?;
    let config = map.config.ok_or_else(|| Error::NoConfig {
        cluster: plane.cluster().to_string(),
    })?;
    let mut members = Vec::new();
    for name in &names {
        let live = map.nodes.get(name).ok_or_else(|| {
            Error::Invalid(format!(
                "node {name:?} is not running in cluster {:?}: start it with \
                 `chirp serve --etcd ... --cluster {} --node-name {name}`; `node add` takes \
                 its addresses from its registration",
                plane.cluster(),
                plane.cluster()
            ))
        })?;
        if let Some(m) = map.members.get(name) {
            if m.state == MemberState::Removed {
                return Err(Error::Invalid(format!(
                    "node {name:?} was removed from the cluster; a removed name is not reused"
                )));
            }
        }
        members.push(Member {
            name: name.clone(),
            api: live.api.clone(),
            admin: live.admin.clone(),
            repl: live.repl.clone(),
            state: map
                .members
                .get(name)
                .map_or(MemberState::Active, |m| m.state),
        });
    }
    let mut revision = map.revision;
    for member in &members {
        revision = plane.put_member(member).await?;
    }
    let mut shards_created = 0;
    if map.shards.is_empty() {
        let plan = initial_placement(config.shards, config.rf, config.min_sync, &names);
        let updates: Vec<ShardUpdate> = plan
            .into_iter()
            .enumerate()
            .map(|(id, assignment)| ShardUpdate {
                id: id as u32,
                expected_mod_revision: 0,
                assignment,
            })
            .collect();
        revision = plane.update_shards(&updates).await?;
        shards_created = updates.len() as u32;
    }
    Ok(AddReport {
        added: names,
        shards_created,
        revision,
    })
}

/// What [`planned_failover`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailoverReport {
    /// The shard.
    pub shard: u32,
    /// Its primary before.
    pub from: String,
    /// Its primary now.
    pub to: String,
    /// Its epoch now.
    pub epoch: u64,
    /// The revision of the map that made `to` the primary.
    pub revision: u64,
    /// From the request to the new map, in milliseconds.
    pub took_ms: u64,
}

/// A planned handover of `shard` to `to` (by default the first live member of its sync set,
/// else its first live replica), carried out by the primary (see [`Handover`]). Both must be
/// alive. Returns once the map names `to` the primary; fails if the primary calls the
/// handover off (`to` did not catch up within `timeout`), and withdraws the request itself
/// if nothing happens within twice `timeout` and 2 s (a primary that died meanwhile).
pub async fn planned_failover(
    plane: &dyn ControlPlane,
    shard: u32,
    to: Option<&str>,
    timeout: Duration,
) -> Result<FailoverReport> {
    let started = Instant::now();
    let map = plane.read_map().await?;
    if map.config.is_none() {
        return Err(Error::NoConfig {
            cluster: plane.cluster().to_string(),
        });
    }
    let current = shard_in(&map, shard)?;
    let a = &current.assignment;
    if let Some(h) = &a.handover {
        return Err(Error::Invalid(format!(
            "a handover of shard {shard} to {} is already under way",
            h.to
        )));
    }
    if !map.nodes.contains_key(&a.primary) {
        return Err(Error::Invalid(format!(
            "shard {shard}'s primary {} is not alive: a planned handover needs it running              (it stops taking writes and waits for the new primary to catch up)",
            a.primary
        )));
    }
    let to = match to {
        Some(to) if to == a.primary => {
            return Err(Error::Invalid(format!(
                "{to} is already the primary of shard {shard}"
            )))
        }
        Some(to) if !a.replicas.iter().any(|r| r == to) => {
            return Err(Error::Invalid(format!(
                "{to} is not a replica of shard {shard} (its replicas: {})",
                a.replicas.join(", ")
            )))
        }
        Some(to) if !map.nodes.contains_key(to) => {
            return Err(Error::Invalid(format!("{to} is not alive")))
        }
        Some(to) => to.to_string(),
        None => a
            .sync
            .iter()
            .chain(&a.replicas)
            .find(|n| map.nodes.contains_key(n.as_str()))
            .cloned()
            .ok_or_else(|| {
                Error::Invalid(format!("shard {shard} has no live replica to hand over to"))
            })?,
    };
    let mut asked = a.clone();
    asked.handover = Some(Handover {
        to: to.clone(),
        timeout_ms: timeout.as_millis() as u64,
    });
    let asked_at = write_shard(plane, shard, current.mod_revision, asked).await?;
    // The primary gives up after `timeout`; past twice that and a margin it is not acting.
    let deadline = Instant::now() + timeout * 2 + Duration::from_secs(2);
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let map = plane.read_map().await?;
        let Some(now) = map.shards.get(&shard) else {
            return Err(Error::Invalid(format!("shard {shard} disappeared")));
        };
        let b = &now.assignment;
        if b.epoch > a.epoch {
            if b.primary != to {
                return Err(Error::Invalid(format!(
                    "shard {shard} changed primary to {} at epoch {} meanwhile",
                    b.primary, b.epoch
                )));
            }
            return Ok(FailoverReport {
                shard,
                from: a.primary.clone(),
                to,
                epoch: b.epoch,
                revision: now.mod_revision,
                took_ms: started.elapsed().as_millis() as u64,
            });
        }
        if b.handover.is_none() {
            return Err(Error::Invalid(format!(
                "{} called the handover off: {to} did not catch up within {} ms (see {}'s                  log); it takes writes again",
                a.primary,
                timeout.as_millis(),
                a.primary
            )));
        }
        if Instant::now() > deadline && now.mod_revision == asked_at {
            // The primary never acted (it died or lost etcd): take the request back, unless
            // it acts in between (then the comparison fails and the next read tells).
            let mut back = b.clone();
            back.handover = None;
            let withdrawn = write_shard(plane, shard, now.mod_revision, back).await;
            if withdrawn.is_ok() {
                return Err(Error::Invalid(format!(
                    "{} did not act on the handover within {} ms; the request is withdrawn",
                    a.primary,
                    deadline.duration_since(started).as_millis()
                )));
            }
        }
    }
}

/// What [`force_promote`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForcePromoteReport {
    /// The shard.
    pub shard: u32,
    /// Its dead primary.
    pub from: String,
    /// Its primary now.
    pub to: String,
    /// Its epoch now.
    pub epoch: u64,
    /// The revision of the write.
    pub revision: u64,
}

/// Makes `to`, a live replica of `shard`, its primary although no live member of the sync
/// set is there to take over: writes acknowledged by the dead primary that `to` never
/// received are lost (the old primary, if it comes back, sets them aside as divergent).
/// Refused while the primary is alive (use a planned handover) and unless `accept_data_loss`.
pub async fn force_promote(
    plane: &dyn ControlPlane,
    shard: u32,
    to: &str,
    accept_data_loss: bool,
) -> Result<ForcePromoteReport> {
    if !accept_data_loss {
        return Err(Error::Invalid(
            "force-promote can lose acknowledged writes; say so with --accept-data-loss".into(),
        ));
    }
    let map = plane.read_map().await?;
    let current = shard_in(&map, shard)?;
    let a = &current.assignment;
    if map.nodes.contains_key(&a.primary) {
        return Err(Error::Invalid(format!(
            "shard {shard}'s primary {} is alive: use `chirpctl shard failover`, which loses nothing",
            a.primary
        )));
    }
    if !a.replicas.iter().any(|r| r == to) {
        return Err(Error::Invalid(format!(
            "{to} is not a replica of shard {shard} (its replicas: {})",
            a.replicas.join(", ")
        )));
    }
    if !map.nodes.contains_key(to) {
        return Err(Error::Invalid(format!("{to} is not alive")));
    }
    let mut next = crate::controller::failed_over(a, to);
    // The old sync members are dead or behind: the new primary builds its set afresh from
    // replicas that hold everything it has.
    next.sync.clear();
    let revision = write_shard(plane, shard, current.mod_revision, next.clone()).await?;
    Ok(ForcePromoteReport {
        shard,
        from: a.primary.clone(),
        to: to.to_string(),
        epoch: next.epoch,
        revision,
    })
}

/// What [`add_replica`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddReplicaReport {
    /// The shard.
    pub shard: u32,
    /// The node that now holds a copy of it, as a learner.
    pub node: String,
    /// The revision of the write.
    pub revision: u64,
}

/// Gives `node`, an active member, a copy of `shard`: it joins as a learner (it opens the
/// shard, follows the primary and bootstraps from a checkpoint if the primary's log no
/// longer reaches back far enough, image files included), and the controller makes it a
/// replica once it is within a few entries of the primary. One transaction comparing the
/// shard's `mod_revision`.
pub async fn add_replica(
    plane: &dyn ControlPlane,
    shard: u32,
    node: &str,
) -> Result<AddReplicaReport> {
    let map = plane.read_map().await?;
    let current = shard_in(&map, shard)?;
    check_active(&map, node)?;
    let a = &current.assignment;
    if a.primary == node || a.replicas.iter().chain(&a.learners).any(|n| n == node) {
        return Err(Error::Invalid(format!(
            "{node} already holds a copy of shard {shard}"
        )));
    }
    let mut next = a.clone();
    next.learners.push(node.to_string());
    let revision = write_shard(plane, shard, current.mod_revision, next).await?;
    Ok(AddReplicaReport {
        shard,
        node: node.to_string(),
        revision,
    })
}

/// `chirpctl cluster status --json`: exactly these fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The revision the map was read at.
    pub revision: u64,
    /// The elected controller, null while none holds the election.
    pub controller: Option<String>,
    /// Members and live nodes, by name.
    pub nodes: Vec<NodeStatus>,
    /// Every shard, by id.
    pub shards: Vec<ShardStatus>,
}

/// One node in [`Status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    /// The node's name.
    pub name: String,
    /// Its public API address (from its membership, else its registration).
    pub api: String,
    /// Whether it is registered under a live lease.
    pub alive: bool,
    /// Its member state; null for a running node not (yet) added.
    pub state: Option<MemberState>,
}

/// One shard in [`Status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardStatus {
    /// The shard id.
    pub id: u32,
    /// Its epoch.
    pub epoch: u64,
    /// Its primary.
    pub primary: String,
    /// Its replicas.
    pub replicas: Vec<String>,
    /// Its sync set.
    pub sync: Vec<String>,
    /// Its learners.
    pub learners: Vec<String>,
    /// The move under way, null if none.
    pub moving: Option<MoveStatus>,
}

impl Status {
    /// The report of a map.
    pub fn of(map: &ClusterMap) -> Status {
        let mut nodes: Vec<NodeStatus> = map
            .members
            .values()
            .map(|m| NodeStatus {
                name: m.name.clone(),
                api: m.api.clone(),
                alive: map.nodes.contains_key(&m.name),
                state: Some(m.state),
            })
            .collect();
        nodes.extend(
            map.nodes
                .values()
                .filter(|n| !map.members.contains_key(&n.name))
                .map(|n| NodeStatus {
                    name: n.name.clone(),
                    api: n.api.clone(),
                    alive: true,
                    state: None,
                }),
        );
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let shards = map
            .shards
            .values()
            .map(|s| ShardStatus {
                id: s.id,
                epoch: s.assignment.epoch,
                primary: s.assignment.primary.clone(),
                replicas: s.assignment.replicas.clone(),
                sync: s.assignment.sync.clone(),
                learners: s.assignment.learners.clone(),
                moving: move_status(s),
            })
            .collect();
        Status {
            revision: map.revision,
            controller: map.controller.as_ref().map(|c| c.name.clone()),
            nodes,
            shards,
        }
    }
}

/// Writes one shard's assignment in a transaction comparing its `mod_revision` with
/// `expected` ([`ControlPlane::update_shards`]); the new revision.
async fn write_shard(
    plane: &dyn ControlPlane,
    id: u32,
    expected: u64,
    assignment: crate::map::ShardAssignment,
) -> Result<u64> {
    plane
        .update_shards(&[ShardUpdate {
            id,
            expected_mod_revision: expected,
            assignment,
        }])
        .await
}

/// The shard `shard` of a map, or an error naming it.
fn shard_in(map: &ClusterMap, shard: u32) -> Result<&VersionedShard> {
    map.shards
        .get(&shard)
        .ok_or_else(|| Error::Invalid(format!("the cluster has no shard {shard}")))
}

/// Whether `node` is an active member; an error saying what it is otherwise.
fn check_active(map: &ClusterMap, node: &str) -> Result<()> {
    match map.members.get(node) {
        Some(m) if m.state == MemberState::Active => Ok(()),
        Some(m) => Err(Error::Invalid(format!(
            "{node} is {}, not an active member",
            m.state.as_str()
        ))),
        None => Err(Error::Invalid(format!("{node} is not a member"))),
    }
}

/// What [`remove_replica`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoveReplicaReport {
    /// The shard.
    pub shard: u32,
    /// The node whose copy was taken out.
    pub node: String,
    /// The revision of the write.
    pub revision: u64,
}

/// Takes `node`'s copy of `shard` (a replica's or a learner's) out of the shard in one
/// transaction comparing its `mod_revision`; the node then closes its copy and moves its
/// files aside. Refused for the primary (hand it over first, or move it), while a move is
/// under way, and when fewer than `min_sync` replicas would be left (writes would wait for
/// copies that are not there).
pub async fn remove_replica(
    plane: &dyn ControlPlane,
    shard: u32,
    node: &str,
) -> Result<RemoveReplicaReport> {
    let map = plane.read_map().await?;
    let config = map.config.ok_or_else(|| Error::NoConfig {
        cluster: plane.cluster().to_string(),
    })?;
    let current = shard_in(&map, shard)?;
    let a = &current.assignment;
    if a.primary == node {
        return Err(Error::Invalid(format!(
            "{node} is the primary of shard {shard}: hand it over first \
             (`chirpctl shard failover {shard}`) or move it (`chirpctl shard move`)"
        )));
    }
    if let Some(m) = &a.moving {
        return Err(Error::Invalid(format!(
            "shard {shard} is moving from {} to {}; abort the move first",
            m.from, m.to
        )));
    }
    let learner = a.learners.iter().any(|n| n == node);
    if !learner && !a.replicas.iter().any(|n| n == node) {
        return Err(Error::Invalid(format!(
            "{node} holds no copy of shard {shard}"
        )));
    }
    if !learner && a.replicas.len() <= config.min_sync as usize {
        return Err(Error::Invalid(format!(
            "shard {shard} would keep {} replicas, fewer than min_sync {}",
            a.replicas.len() - 1,
            config.min_sync
        )));
    }
    let mut next = a.clone();
    next.replicas.retain(|n| n != node);
    next.sync.retain(|n| n != node);
    next.learners.retain(|n| n != node);
    let revision = write_shard(plane, shard, current.mod_revision, next).await?;
    Ok(RemoveReplicaReport {
        shard,
        node: node.to_string(),
        revision,
    })
}

/// What [`start_move`] did (or, for a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MoveReport {
    /// The shard.
    pub shard: u32,
    /// The node giving its copy up.
    pub from: String,
    /// The node taking a copy.
    pub to: String,
    /// Whether `to` ends as the primary.
    pub primary: bool,
    /// The steps, in words.
    pub steps: Vec<String>,
    /// The revision of the write; null for a dry run.
    pub revision: Option<u64>,
}

/// Starts moving a copy of `shard` to `to` (an active, running member holding no copy):
/// from `from`, by default the primary's when `primary`, else a replica's (see
/// [`crate::moves::start`]). The controller carries it out; with `dry_run` nothing is
/// written and the report says what would happen.
pub async fn start_move(
    plane: &dyn ControlPlane,
    shard: u32,
    from: Option<&str>,
    to: &str,
    primary: bool,
    dry_run: bool,
) -> Result<MoveReport> {
    let map = plane.read_map().await?;
    if map.config.is_none() {
        return Err(Error::NoConfig {
            cluster: plane.cluster().to_string(),
        });
    }
    let current = shard_in(&map, shard)?;
    check_active(&map, to)?;
    if !map.nodes.contains_key(to) {
        return Err(Error::Invalid(format!("{to} is not running")));
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let next = crate::moves::start(&current.assignment, shard, from, to, primary, now_ms)?;
    if let Some(m) = &next.moving {
        for node in [&m.from, &m.to] {
            let busy = moves_of(&map)
                .iter()
                .filter(|o| o.from == *node || o.to == *node)
                .count();
            if busy >= crate::moves::MAX_MOVES_PER_NODE {
                return Err(Error::Invalid(format!(
                    "{node} already takes part in {busy} moves (at most {} at once); wait for \
                     one to end (`chirpctl move list`)",
                    crate::moves::MAX_MOVES_PER_NODE
                )));
            }
        }
    }
    let steps = crate::moves::plan_text(&next, shard);
    let m = next
        .moving
        .clone()
        .ok_or_else(|| Error::Invalid(format!("shard {shard}'s move did not start")))?;
    let revision = if dry_run {
        None
    } else {
        Some(write_shard(plane, shard, current.mod_revision, next).await?)
    };
    Ok(MoveReport {
        shard,
        from: m.from,
        to: m.to,
        primary: m.primary,
        steps,
        revision,
    })
}

/// Aborts `shard`'s move (see [`crate::moves::abort`]): one transaction comparing the
/// shard's `mod_revision`. Returns the revision.
pub async fn abort_move(plane: &dyn ControlPlane, shard: u32) -> Result<u64> {
    let map = plane.read_map().await?;
    let current = shard_in(&map, shard)?;
    let next = crate::moves::abort(&current.assignment, shard)?;
    write_shard(plane, shard, current.mod_revision, next).await
}

/// One move in `chirpctl move list|status --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MoveStatus {
    /// The shard.
    pub shard: u32,
    /// The node giving its copy up.
    pub from: String,
    /// The node taking a copy.
    pub to: String,
    /// Whether `to` ends as the primary.
    pub primary: bool,
    /// The step it is at: catching_up, in_sync, cutover, cleanup.
    pub state: &'static str,
    /// When it started, in Unix milliseconds.
    pub started_ms: u64,
    /// Handovers called off so far.
    pub attempts: u32,
}

/// The moves under way in a map, by shard.
pub fn moves_of(map: &ClusterMap) -> Vec<MoveStatus> {
    map.shards.values().filter_map(move_status).collect()
}

/// A shard's move, if one is under way.
fn move_status(s: &VersionedShard) -> Option<MoveStatus> {
    let m = s.assignment.moving.as_ref()?;
    Some(MoveStatus {
        shard: s.id,
        from: m.from.clone(),
        to: m.to.clone(),
        primary: m.primary,
        state: m.state.name(),
        started_ms: m.started_ms,
        attempts: m.attempts,
    })
}

/// What [`run_steps`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunReport {
    /// The steps done, in words.
    pub done: Vec<String>,
    /// The steps that failed or were undone, with why.
    pub failed: Vec<String>,
    /// From the first step to the last, in milliseconds.
    pub took_ms: u64,
}

/// Runs a plan's steps ([`crate::rebalance`]): handovers and removals one by one as they come;
/// moves and new copies up to `parallel` at once (never two on one shard, nor more than
/// [`crate::moves::MAX_MOVES_PER_NODE`] moves on one node), each followed until the
/// controller has finished or undone the move, or made the new copy a replica. `progress`
/// hears of each step started and ended. Past `timeout` it stops starting steps and returns
/// what it did; moves already started go on.
pub async fn run_steps(
    plane: &dyn ControlPlane,
    steps: &[crate::rebalance::Step],
    parallel: usize,
    timeout: Duration,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<RunReport> {
    use crate::rebalance::Step;
    let started = Instant::now();
    let mut report = RunReport::default();
    let mut queue: std::collections::VecDeque<&Step> = steps.iter().collect();
    let mut running: Vec<&Step> = Vec::new();
    while !queue.is_empty() || !running.is_empty() {
        // Start what may start.
        let mut i = 0;
        while i < queue.len() && running.len() < parallel.max(1) && started.elapsed() < timeout {
            let step = queue[i];
            let busy = |node: &str| {
                running
                    .iter()
                    .filter(
                        |r| matches!(r, Step::Move { from, to, .. } if from == node || to == node),
                    )
                    .count()
                    >= crate::moves::MAX_MOVES_PER_NODE
            };
            let nodes_busy = match step {
                Step::Move { from, to, .. } => busy(from) || busy(to),
                _ => false,
            };
            if nodes_busy || running.iter().any(|r| r.shard() == step.shard()) {
                i += 1;
                continue;
            }
            let _ = queue.remove(i);
            progress(&format!("start: {}", step.describe()));
            let outcome = match step {
                Step::Handover { shard, to, .. } => {
                    planned_failover(plane, *shard, Some(to), Duration::from_secs(10))
                        .await
                        .map(|_| true)
                }
                Step::Remove { shard, node } => {
                    remove_replica(plane, *shard, node).await.map(|_| true)
                }
                Step::Copy { shard, to } => add_replica(plane, *shard, to).await.map(|_| false),
                Step::Move {
                    shard,
                    from,
                    to,
                    primary,
                } => start_move(plane, *shard, Some(from), to, *primary, false)
                    .await
                    .map(|_| false),
            };
            match outcome {
                Ok(true) => {
                    progress(&format!("done: {}", step.describe()));
                    report.done.push(step.describe());
                }
                Ok(false) => running.push(step),
                Err(e) => {
                    progress(&format!("failed: {}: {e}", step.describe()));
                    report.failed.push(format!("{}: {e}", step.describe()));
                }
            }
        }
        if running.is_empty() {
            if started.elapsed() >= timeout {
                break;
            }
            continue;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        let map = plane.read_map().await?;
        running.retain(|step| {
            if let Step::Copy { shard, to } = step {
                let Some(s) = map.shards.get(shard) else {
                    return false;
                };
                let a = &s.assignment;
                if a.learners.contains(to) {
                    return true;
                }
                if a.replicas.contains(to) {
                    progress(&format!("done: {}", step.describe()));
                    report.done.push(step.describe());
                } else {
                    let why = "the new copy was taken out";
                    progress(&format!("failed: {}: {why}", step.describe()));
                    report.failed.push(format!("{}: {why}", step.describe()));
                }
                return false;
            }
            let Step::Move {
                shard, from, to, ..
            } = step
            else {
                return false;
            };
            let Some(s) = map.shards.get(shard) else {
                return false;
            };
            let a = &s.assignment;
            if a.moving.is_some() {
                return true;
            }
            let copies: Vec<&str> = a.copies().collect();
            if copies.contains(&to.as_str()) && !copies.contains(&from.as_str()) {
                progress(&format!("done: {}", step.describe()));
                report.done.push(step.describe());
            } else {
                let why = "undone by the controller (the cutover was called off too often)";
                progress(&format!("failed: {}: {why}", step.describe()));
                report.failed.push(format!("{}: {why}", step.describe()));
            }
            false
        });
        if started.elapsed() >= timeout && queue.is_empty() {
            break;
        }
    }
    report.took_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Sets a member's state (`node drain` marks it draining, `node remove` removed), keeping
/// its addresses.
pub async fn set_member_state(
    plane: &dyn ControlPlane,
    node: &str,
    state: MemberState,
) -> Result<u64> {
    let members = plane.members().await?;
    let mut member = members
        .into_iter()
        .find(|m| m.name == node)
        .ok_or_else(|| Error::Invalid(format!("{node} is not a member")))?;
    member.state = state;
    plane.put_member(&member).await
}

/// Marks `node` removed once it holds no copy of any shard (`chirpctl node remove`): its
/// peers refuse it from then on, and its name is never reused.
pub async fn remove_node(plane: &dyn ControlPlane, node: &str) -> Result<u64> {
    let map = plane.read_map().await?;
    if !map.members.contains_key(node) {
        return Err(Error::Invalid(format!("{node} is not a member")));
    }
    let held: Vec<String> = map
        .shards
        .values()
        .filter(|s| {
            let a = &s.assignment;
            a.copies().any(|c| c == node) || a.learners.iter().any(|l| l == node)
        })
        .map(|s| s.id.to_string())
        .collect();
    if !held.is_empty() {
        return Err(Error::Invalid(format!(
            "{node} still holds copies of shards {}: drain it first (`chirpctl node drain {node}`)",
            held.join(", ")
        )));
    }
    set_member_state(plane, node, MemberState::Removed).await
}
