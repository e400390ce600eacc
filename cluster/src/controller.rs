//! The controller: one node at a time, elected through the control plane
//! ([`ControlPlane::campaign`]), fails shards over when their primary dies. Every
//! transaction it writes compares its term ([`ControlPlane::update_shards_as`]), so a
//! deposed controller changes nothing.
//!
//! One [`Controller::round`]:
//! - a member whose `nodes/` key is gone is dead, unless it answers a direct probe (an etcd
//!   hiccup is not a death);
//! - when more than a third of the members are dead at once, nothing is failed over (the
//!   control plane, not the nodes, is the likelier fault);
//! - each shard whose primary is dead, with no handover under way, is given to the live
//!   member of its sync set with the highest (epoch, last LSN): every acknowledged write of
//!   the shard is on each member of that set, so on that one. Its new assignment: the next
//!   epoch, that member primary, the old primary a replica (it comes back as one and drops
//!   its divergent tail), the sync set without the new primary (its primary tops it up from
//!   replicas that hold every write);
//! - a shard with no live sync member stays unavailable: failing it over could lose
//!   acknowledged writes (an operator may `force-promote`, accepting that);
//! - at most `max_per_round` failovers per round;
//! - a learner (a node catching up on a copy of a shard, the first step of adding a copy)
//!   becomes a replica once it is alive and within `learner_lag` entries of the shard's live
//!   primary. It joins no sync set by this: the primary takes replicas into its sync set
//!   only once they hold every write;
//! - a shard with a copy moving ([`crate::Move`]) takes the move's next step
//!   ([`crate::moves::step`]), also only when every member is alive.

use std::collections::BTreeSet;

use async_trait::async_trait;
use serde::Serialize;

use crate::map::{ClusterMap, Member, MemberState, ShardAssignment, ShardUpdate};
use crate::plane::ControlPlane;
use crate::Result;

/// What the controller asks of the nodes themselves.
#[async_trait]
pub trait Probe: Send + Sync {
    /// Whether node `name` answers directly at its public API `api`, whatever the control
    /// plane says, and still serves (a node that answers but has stopped serving the shards
    /// it leads, its lease lapsed, does not count).
    async fn answers(&self, name: &str, api: &str) -> bool;
    /// Node `name`'s (epoch, last LSN) of `shard`, asked at `api`, if it answers and holds it.
    async fn position(&self, name: &str, api: &str, shard: u32) -> Option<(u64, u64)>;
    /// The bytes of node `name`'s copy of `shard`, if it answers and holds it (None: unknown).
    async fn shard_bytes(&self, _name: &str, _api: &str, _shard: u32) -> Option<u64> {
        None
    }
}

/// How eagerly the controller acts.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Failovers written per round at most.
    pub max_per_round: usize,
    /// How many entries behind its primary a learner may be to become a replica.
    pub learner_lag: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_per_round: 16,
            learner_lag: 64,
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Round {
    /// Shards failed over: (shard, old primary, new primary, new epoch).
    pub failed_over: Vec<(u32, String, String, u64)>,
    /// Shards whose primary is dead and that have no live sync member.
    pub stranded: Vec<u32>,
    /// Whether the round stood still because too many members died at once.
    pub paused: bool,
    /// Learners made replicas: (shard, node).
    pub promoted: Vec<(u32, String)>,
    /// Moves that took a step: (shard, the step they are at now, "done" or "undone").
    pub moved: Vec<(u32, &'static str)>,
}

/// `a` after its primary's failure, with `to` (a member of its sync set) the new primary.
pub fn failed_over(a: &ShardAssignment, to: &str) -> ShardAssignment {
    let mut replicas: Vec<String> = a.replicas.iter().filter(|r| *r != to).cloned().collect();
    replicas.push(a.primary.clone());
    ShardAssignment {
        epoch: a.epoch + 1,
        primary: to.to_string(),
        replicas,
        sync: a.sync.iter().filter(|s| *s != to).cloned().collect(),
        learners: a.learners.clone(),
        handover: None,
        moving: a.moving.clone(),
    }
}

/// The next step of every move that can take one, on shards not already changed by
/// `taken` this round.
fn moves_stepped(map: &ClusterMap, taken: &[ShardUpdate], out: &mut Round) -> Vec<ShardUpdate> {
    let min_sync = map.config.map_or(0, |c| c.min_sync);
    let mut updates = Vec::new();
    for shard in map.shards.values() {
        if taken.iter().any(|u| u.id == shard.id) {
            continue;
        }
        let Some(next) = crate::moves::step(&shard.assignment, min_sync) else {
            continue;
        };
        let from = shard.assignment.moving.as_ref().map(|m| m.from.as_str());
        let state = match &next.moving {
            Some(m) => m.state.name(),
            None if from.is_some_and(|f| next.copies().any(|c| c == f)) => "undone",
            None => "done",
        };
        out.moved.push((shard.id, state));
        updates.push(ShardUpdate {
            id: shard.id,
            expected_mod_revision: shard.mod_revision,
            assignment: next,
        });
    }
    updates
}

/// The controller of one cluster, run by the node named `me`.
pub struct Controller<'a> {
    /// The control plane.
    pub plane: &'a dyn ControlPlane,
    /// The nodes, asked directly.
    pub probe: &'a dyn Probe,
    /// The policy.
    pub policy: Policy,
}

impl Controller<'_> {
    /// One round at `term` (see the module).
    pub async fn round(&self, term: u64) -> Result<Round> {
        let map = self.plane.read_map().await?;
        let mut out = Round::default();
        let members: Vec<&Member> = map
            .members
            .values()
            .filter(|m| m.state != MemberState::Removed)
            .collect();
        let gone: BTreeSet<&str> = members
            .iter()
            .filter(|m| !map.nodes.contains_key(&m.name))
            .map(|m| m.name.as_str())
            .collect();
        if gone.is_empty() {
            let mut updates = self.caught_up_learners(&map, &mut out).await;
            let stepped = moves_stepped(&map, &updates, &mut out);
            updates.extend(stepped);
            let late = self.overdue_moves(&map, &updates, &mut out).await;
            updates.extend(late);
            self.write(term, &updates, &out).await?;
            return Ok(out);
        }
        if gone.len() * 3 > members.len() {
            tracing::warn!(dead = ?gone, members = members.len(), "over a third of the members expired at once; no failover");
            out.paused = true;
            return Ok(out);
        }
        let mut dead = BTreeSet::new();
        for name in gone {
            match map.members.get(name) {
                Some(m) if self.probe.answers(&m.name, &m.api).await => {
                    tracing::warn!(
                        node = name,
                        "registration expired but the node answers; not failing it over"
                    )
                }
                _ => {
                    dead.insert(name);
                }
            }
        }
        let mut updates = Vec::new();
        for shard in map.shards.values() {
            let a = &shard.assignment;
            if !dead.contains(a.primary.as_str()) || a.handover.is_some() {
                continue;
            }
            if updates.len() >= self.policy.max_per_round {
                break;
            }
            match self.choose(&map, shard.id, a).await {
                Some(to) => {
                    let next = failed_over(a, &to);
                    out.failed_over
                        .push((shard.id, a.primary.clone(), to, next.epoch));
                    updates.push(ShardUpdate {
                        id: shard.id,
                        expected_mod_revision: shard.mod_revision,
                        assignment: next,
                    });
                }
                None => out.stranded.push(shard.id),
            }
        }
        let late = self.overdue_moves(&map, &updates, &mut out).await;
        updates.extend(late);
        if !out.stranded.is_empty() {
            tracing::error!(shards = ?out.stranded, "no live member of the sync set: these shards stay unavailable (chirpctl shard force-promote S --to N --accept-data-loss)");
        }
        self.write(term, &updates, &out).await?;
        Ok(out)
    }

    /// Writes a round's updates in one transaction under `term`: a deposed controller
    /// (another term) or a shard that moved on meanwhile writes nothing, and the next round
    /// decides again.
    async fn write(&self, term: u64, updates: &[ShardUpdate], out: &Round) -> Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        let revision = self.plane.update_shards_as(term, updates).await?;
        for (shard, from, to, epoch) in &out.failed_over {
            tracing::warn!(shard, from = %from, to = %to, epoch, revision, "failed over");
        }
        for (shard, node) in &out.promoted {
            tracing::info!(shard, node = %node, revision, "learner caught up; now a replica");
        }
        for (shard, state) in &out.moved {
            tracing::info!(shard, state, revision, "move stepped");
        }
        Ok(())
    }

    /// The shards (with no handover under way) with a live learner within
    /// `policy.learner_lag` entries of their live primary: each such learner becomes a
    /// replica. Asked only when every member is alive, so failovers come first.
    async fn caught_up_learners(&self, map: &ClusterMap, out: &mut Round) -> Vec<ShardUpdate> {
        let mut updates = Vec::new();
        for shard in map.shards.values() {
            let a = &shard.assignment;
            if a.learners.is_empty() || a.handover.is_some() {
                continue;
            }
            let Some(primary) = map.nodes.get(&a.primary) else {
                continue;
            };
            let Some((_, primary_lsn)) = self
                .probe
                .position(&a.primary, &primary.api, shard.id)
                .await
            else {
                continue;
            };
            let mut caught_up = Vec::new();
            for name in &a.learners {
                let Some(live) = map.nodes.get(name) else {
                    continue;
                };
                if let Some((_, lsn)) = self.probe.position(name, &live.api, shard.id).await {
                    if lsn + self.policy.learner_lag >= primary_lsn {
                        caught_up.push(name.clone());
                    }
                }
            }
            if caught_up.is_empty() {
                continue;
            }
            let mut next = a.clone();
            next.learners.retain(|l| !caught_up.contains(l));
            next.replicas.extend(caught_up.iter().cloned());
            out.promoted
                .extend(caught_up.into_iter().map(|n| (shard.id, n)));
            updates.push(ShardUpdate {
                id: shard.id,
                expected_mod_revision: shard.mod_revision,
                assignment: next,
            });
        }
        updates
    }

    /// Moves whose target has been catching up past its limit, undone (a dead or stuck
    /// target: see [`crate::moves::overdue`]); shards already changed by `taken` this round
    /// are left for the next. The shard's bytes are asked of its primary (unknown: 0).
    async fn overdue_moves(
        &self,
        map: &ClusterMap,
        taken: &[ShardUpdate],
        out: &mut Round,
    ) -> Vec<ShardUpdate> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut updates = Vec::new();
        for shard in map.shards.values() {
            let a = &shard.assignment;
            // Past the limit of an empty shard, or no probe is worth it.
            let late = crate::moves::overdue(a, now_ms, 0).is_some();
            if !late || taken.iter().any(|u| u.id == shard.id) {
                continue;
            }
            let bytes = match map.nodes.get(&a.primary) {
                Some(p) => self
                    .probe
                    .shard_bytes(&a.primary, &p.api, shard.id)
                    .await
                    .unwrap_or(0),
                None => 0,
            };
            if let Some(next) = crate::moves::overdue(a, now_ms, bytes) {
                out.moved.push((shard.id, "undone"));
                updates.push(ShardUpdate {
                    id: shard.id,
                    expected_mod_revision: shard.mod_revision,
                    assignment: next,
                });
            }
        }
        updates
    }

    /// The live member of the shard's sync set with the highest (epoch, last LSN).
    async fn choose(&self, map: &ClusterMap, shard: u32, a: &ShardAssignment) -> Option<String> {
        let mut best: Option<((u64, u64), String)> = None;
        for name in &a.sync {
            // Alive: asked at the address it registered now.
            let Some(live) = map.nodes.get(name) else {
                continue;
            };
            let Some(pos) = self.probe.position(name, &live.api, shard).await else {
                continue;
            };
            if best.as_ref().is_none_or(|(b, _)| pos > *b) {
                best = Some((pos, name.clone()));
            }
        }
        best.map(|(_, name)| name)
    }
}
