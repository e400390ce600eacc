//! Planning rebalances and drains: pure functions from a map to the steps that even it out
//! ([`rebalance`]) or empty one node ([`drain`]). Each plan is simulated on a copy of the
//! assignments, so its steps are consistent with one another; the operator's command runs
//! them a few at a time and plans again from the map it finds, so a plan cut short (a node
//! died, the command was stopped) is simply planned again.
//!
//! What "even" means: every shard has `rf` copies (as many as there are members, if fewer);
//! over the active, live members, copies per member differ by at most one, and so do
//! primaries per member. Shards short of copies get new ones first (on the members with the
//! fewest); primaries are evened next, by planned handovers
//! to a replica on a member with fewer (no data moves) or, when no such replica exists, by
//! moving the primary's copy; copies are then evened by moving replicas' copies from the
//! fullest member to the emptiest one holding none of that shard. Counts decide how many
//! steps; bytes (each shard's, as its primary reports them) decide which shard each step
//! takes: the one whose bytes come closest to half the two members' difference, so a
//! member is not left with the big shards. Bytes are not evened beyond that.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::map::{ClusterMap, MemberState, ShardAssignment};
use crate::{Error, Result};

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    /// A planned handover of `shard` from its primary `from` to its replica `to`.
    Handover {
        /// The shard.
        shard: u32,
        /// Its primary.
        from: String,
        /// The replica that takes over.
        to: String,
    },
    /// A move of `from`'s copy of `shard` to `to` (as the primary if `primary`).
    Move {
        /// The shard.
        shard: u32,
        /// The node giving its copy up.
        from: String,
        /// The node taking a copy.
        to: String,
        /// Whether `to` ends as the primary.
        primary: bool,
    },
    /// A new copy of `shard` for `to` (the shard has fewer than `rf` copies): it joins as a
    /// learner and becomes a replica once caught up.
    Copy {
        /// The shard.
        shard: u32,
        /// The node taking a copy.
        to: String,
    },
    /// `node`'s copy of `shard` taken out, nobody taking it (a drain with no node left that
    /// holds none of the shard; the shard keeps at least `min_sync` replicas).
    Remove {
        /// The shard.
        shard: u32,
        /// The node whose copy goes.
        node: String,
    },
}

impl Step {
    /// The shard the step changes.
    pub fn shard(&self) -> u32 {
        match self {
            Step::Handover { shard, .. }
            | Step::Move { shard, .. }
            | Step::Copy { shard, .. }
            | Step::Remove { shard, .. } => *shard,
        }
    }

    /// The step in words.
    pub fn describe(&self) -> String {
        match self {
            Step::Handover { shard, from, to } => {
                format!("shard {shard}: hand over from {from} to {to}")
            }
            Step::Move {
                shard,
                from,
                to,
                primary,
            } => format!(
                "shard {shard}: move {from}'s copy to {to}{}",
                if *primary { " as primary" } else { "" }
            ),
            Step::Copy { shard, to } => format!("shard {shard}: a new copy on {to}"),
            Step::Remove { shard, node } => format!("shard {shard}: take {node}'s copy out"),
        }
    }
}

/// The members copies may go to: active and alive.
fn targets(map: &ClusterMap) -> Vec<String> {
    map.members
        .values()
        .filter(|m| m.state == MemberState::Active && map.nodes.contains_key(&m.name))
        .map(|m| m.name.clone())
        .collect()
}

/// Copies and primaries per node in `shards`, every node of `nodes` counted (0 if none).
fn loads(
    shards: &BTreeMap<u32, ShardAssignment>,
    nodes: &[String],
) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let mut copies: BTreeMap<String, usize> = nodes.iter().map(|n| (n.clone(), 0)).collect();
    let mut primaries = copies.clone();
    for a in shards.values() {
        for c in a.copies().chain(a.learners.iter().map(String::as_str)) {
            if let Some(n) = copies.get_mut(c) {
                *n += 1;
            }
        }
        if let Some(n) = primaries.get_mut(&a.primary) {
            *n += 1;
        }
    }
    (copies, primaries)
}

/// Of `ids`, the shard whose bytes are closest to `want` (the first, when bytes are unknown).
fn closest(ids: Vec<u32>, bytes: &BTreeMap<u32, u64>, want: u64) -> Option<u32> {
    ids.into_iter()
        .min_by_key(|id| bytes.get(id).copied().unwrap_or(0).abs_diff(want))
}

fn holds(a: &ShardAssignment, node: &str) -> bool {
    a.copies()
        .chain(a.learners.iter().map(String::as_str))
        .any(|c| c == node)
}

/// The node of `load` with the most (`most`) or the fewest, ties by name.
fn extreme(load: &BTreeMap<String, usize>, most: bool) -> Option<(String, usize)> {
    let pick = load.iter().map(|(n, c)| (n.clone(), *c));
    if most {
        pick.rev().max_by_key(|(_, c)| *c)
    } else {
        pick.min_by_key(|(_, c)| *c)
    }
}

/// Applies a step to the simulated assignments.
fn apply(shards: &mut BTreeMap<u32, ShardAssignment>, step: &Step) {
    let Some(a) = shards.get_mut(&step.shard()) else {
        return;
    };
    match step {
        Step::Handover { to, .. } => *a = a.handed_over(to),
        Step::Move {
            from, to, primary, ..
        } => {
            if *primary && a.primary == *from {
                a.primary = to.clone();
            } else {
                a.replicas.retain(|r| r != from);
                a.replicas.push(to.clone());
            }
            a.sync.retain(|r| r != from);
        }
        Step::Copy { to, .. } => a.replicas.push(to.clone()),
        Step::Remove { node, .. } => {
            a.replicas.retain(|r| r != node);
            a.sync.retain(|r| r != node);
            a.learners.retain(|r| r != node);
        }
    }
}

/// The steps that even out copies and primaries over the active, live members (see the
/// module), choosing shards by their `bytes` (unknown: 0). Shards with a move or a handover
/// under way are left alone; so is the cluster while any member is down (a node coming back
/// would upset the plan).
pub fn rebalance(map: &ClusterMap, bytes: &BTreeMap<u32, u64>) -> Result<Vec<Step>> {
    let nodes = targets(map);
    if let Some(down) = map
        .members
        .values()
        .find(|m| m.state != MemberState::Removed && !map.nodes.contains_key(&m.name))
    {
        return Err(Error::Invalid(format!(
            "{} is down: rebalance once every member is running (or drain and remove it)",
            down.name
        )));
    }
    let mut shards: BTreeMap<u32, ShardAssignment> = map
        .shards
        .iter()
        .map(|(id, s)| (*id, s.assignment.clone()))
        .collect();
    let busy: BTreeSet<u32> = shards
        .iter()
        .filter(|(_, a)| a.moving.is_some() || a.handover.is_some())
        .map(|(id, _)| *id)
        .collect();
    let mut steps = Vec::new();
    let limit = shards.len() * 6 + 8;
    // Shards with fewer than rf copies (made on fewer nodes, or imported on one) first: a
    // new copy each on the least loaded nodes holding none.
    let rf = map.config.map_or(1, |c| c.rf.max(1)) as usize;
    let ids: Vec<u32> = shards.keys().copied().collect();
    for id in ids {
        if busy.contains(&id) {
            continue;
        }
        while shards[&id].copies().count() + shards[&id].learners.len() < rf.min(nodes.len()) {
            let (copies, _) = loads(&shards, &nodes);
            let Some(to) = copies
                .iter()
                .filter(|(n, _)| !holds(&shards[&id], n))
                .min_by_key(|(_, c)| **c)
                .map(|(n, _)| n.clone())
            else {
                break;
            };
            let step = Step::Copy { shard: id, to };
            apply(&mut shards, &step);
            steps.push(step);
        }
    }
    // Then primaries.
    while steps.len() < limit {
        let (_, primaries) = loads(&shards, &nodes);
        let (Some((most, hi)), Some((least, lo))) =
            (extreme(&primaries, true), extreme(&primaries, false))
        else {
            break;
        };
        if hi <= lo + 1 {
            break;
        }
        let candidates: Vec<u32> = shards
            .iter()
            .filter(|(id, a)| a.primary == most && !busy.contains(id))
            .map(|(id, _)| *id)
            .collect();
        // The shard whose move brings the bytes the two nodes lead closest together.
        let led = |node: &str| -> u64 {
            shards
                .iter()
                .filter(|(_, a)| a.primary == node)
                .map(|(id, _)| bytes.get(id).copied().unwrap_or(0))
                .sum()
        };
        let half = led(&most).saturating_sub(led(&least)) / 2;
        let best = |ids: Vec<u32>| closest(ids, bytes, half);
        // A replica on the least-loaded node: a handover, no data moved.
        let handover = best(
            candidates
                .iter()
                .copied()
                .filter(|id| shards[id].replicas.contains(&least))
                .collect(),
        );
        let step = match handover {
            Some(shard) => Step::Handover {
                shard,
                from: most.clone(),
                to: least.clone(),
            },
            None => match best(
                candidates
                    .iter()
                    .copied()
                    .filter(|id| !holds(&shards[id], &least))
                    .collect(),
            ) {
                Some(shard) => Step::Move {
                    shard,
                    from: most.clone(),
                    to: least.clone(),
                    primary: true,
                },
                None => break,
            },
        };
        apply(&mut shards, &step);
        steps.push(step);
    }
    // Then copies.
    while steps.len() < limit {
        let (copies, _) = loads(&shards, &nodes);
        let (Some((most, hi)), Some((least, lo))) =
            (extreme(&copies, true), extreme(&copies, false))
        else {
            break;
        };
        if hi <= lo + 1 {
            break;
        }
        let of = |node: &str| -> u64 {
            shards
                .iter()
                .filter(|(_, a)| holds(a, node))
                .map(|(id, _)| bytes.get(id).copied().unwrap_or(0))
                .sum()
        };
        let half = of(&most).saturating_sub(of(&least)) / 2;
        let pick = closest(
            shards
                .iter()
                .filter(|(id, a)| {
                    a.replicas.contains(&most) && !holds(a, &least) && !busy.contains(id)
                })
                .map(|(id, _)| *id)
                .collect(),
            bytes,
            half,
        );
        let Some(shard) = pick else { break };
        let step = Step::Move {
            shard,
            from: most.clone(),
            to: least.clone(),
            primary: false,
        };
        apply(&mut shards, &step);
        steps.push(step);
    }
    Ok(steps)
}

/// The steps that empty `node`: each shard it leads is handed over to a live replica (or
/// its copy moved as the primary when it has none), then each copy it holds moves to the
/// live active member with the fewest copies that holds none of that shard; with no such
/// member the copy is taken out if the shard keeps `min_sync` replicas, else the drain is
/// refused.
pub fn drain(map: &ClusterMap, node: &str) -> Result<Vec<Step>> {
    if !map.members.contains_key(node) {
        return Err(Error::Invalid(format!("{node} is not a member")));
    }
    let min_sync = map.config.map_or(0, |c| c.min_sync) as usize;
    let nodes: Vec<String> = targets(map).into_iter().filter(|n| n != node).collect();
    let mut shards: BTreeMap<u32, ShardAssignment> = map
        .shards
        .iter()
        .map(|(id, s)| (*id, s.assignment.clone()))
        .collect();
    if let Some((id, _)) = shards
        .iter()
        .find(|(_, a)| holds(a, node) && (a.moving.is_some() || a.handover.is_some()))
    {
        return Err(Error::Invalid(format!(
            "shard {id} has a move or handover under way; drain once it is done"
        )));
    }
    let mut steps = Vec::new();
    let ids: Vec<u32> = shards.keys().copied().collect();
    for &id in &ids {
        let a = &shards[&id];
        if a.primary != node {
            continue;
        }
        let live = a
            .sync
            .iter()
            .chain(&a.replicas)
            .find(|r| map.nodes.contains_key(r.as_str()) && nodes.contains(r))
            .cloned();
        let step = match live {
            Some(to) => Step::Handover {
                shard: id,
                from: node.to_string(),
                to,
            },
            None => {
                let (copies, _) = loads(&shards, &nodes);
                let to = copies
                    .iter()
                    .filter(|(n, _)| !holds(a, n))
                    .min_by_key(|(_, c)| **c)
                    .map(|(n, _)| n.clone())
                    .ok_or_else(|| {
                        Error::Invalid(format!(
                            "shard {id} has no live replica and no node to move to"
                        ))
                    })?;
                Step::Move {
                    shard: id,
                    from: node.to_string(),
                    to,
                    primary: true,
                }
            }
        };
        apply(&mut shards, &step);
        steps.push(step);
    }
    for &id in &ids {
        let a = &shards[&id];
        if !a.replicas.iter().chain(&a.learners).any(|r| r == node) {
            continue;
        }
        let (copies, _) = loads(&shards, &nodes);
        let to = copies
            .iter()
            .filter(|(n, _)| !holds(a, n))
            .min_by_key(|(_, c)| **c)
            .map(|(n, _)| n.clone());
        let step = match to {
            Some(to) => Step::Move {
                shard: id,
                from: node.to_string(),
                to,
                primary: false,
            },
            None if a.learners.iter().any(|l| l == node) || a.replicas.len() > min_sync => {
                Step::Remove {
                    shard: id,
                    node: node.to_string(),
                }
            }
            None => {
                return Err(Error::Invalid(format!(
                    "shard {id} would keep fewer than min_sync {min_sync} replicas and no \
                     other node can take {node}'s copy: add a node first"
                )))
            }
        };
        apply(&mut shards, &step);
        steps.push(step);
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::{ClusterConfig, Member, NodeInfo, VersionedShard};
    use crate::placement::initial_placement;

    fn map(shards: u32, rf: u32, placed_on: &[&str], members: &[&str]) -> ClusterMap {
        let placed: Vec<String> = placed_on.iter().map(|s| s.to_string()).collect();
        let mut m = ClusterMap {
            config: Some(ClusterConfig {
                shards,
                rf,
                min_sync: 1,
            }),
            ..ClusterMap::default()
        };
        for name in members {
            m.members.insert(
                name.to_string(),
                Member {
                    name: name.to_string(),
                    api: String::new(),
                    admin: String::new(),
                    repl: None,
                    state: MemberState::Active,
                },
            );
            m.nodes.insert(
                name.to_string(),
                NodeInfo {
                    name: name.to_string(),
                    api: String::new(),
                    admin: String::new(),
                    repl: None,
                    started_at_ms: 0,
                    software: String::new(),
                },
            );
        }
        for (id, a) in initial_placement(shards, rf, 1, &placed)
            .into_iter()
            .enumerate()
        {
            m.shards.insert(
                id as u32,
                VersionedShard {
                    id: id as u32,
                    mod_revision: 1,
                    assignment: a,
                },
            );
        }
        m
    }

    fn after(m: &ClusterMap, steps: &[Step]) -> BTreeMap<u32, ShardAssignment> {
        let mut shards: BTreeMap<u32, ShardAssignment> = m
            .shards
            .iter()
            .map(|(id, s)| (*id, s.assignment.clone()))
            .collect();
        for s in steps {
            apply(&mut shards, s);
        }
        shards
    }

    #[test]
    fn a_new_node_gets_its_share_of_copies_and_primaries() {
        for (shards, rf) in [(8, 2), (16, 3), (5, 2), (64, 3)] {
            let m = map(shards, rf, &["n1", "n2", "n3"], &["n1", "n2", "n3", "n4"]);
            let steps = rebalance(&m, &BTreeMap::new()).expect("plan");
            assert!(!steps.is_empty());
            let nodes: Vec<String> = ["n1", "n2", "n3", "n4"].map(String::from).to_vec();
            let shards_after = after(&m, &steps);
            let (copies, primaries) = loads(&shards_after, &nodes);
            let spread = |l: &BTreeMap<String, usize>| {
                l.values().max().unwrap_or(&0) - l.values().min().unwrap_or(&0)
            };
            assert!(spread(&copies) <= 1, "{shards}/{rf}: {copies:?}");
            assert!(spread(&primaries) <= 1, "{shards}/{rf}: {primaries:?}");
            for a in shards_after.values() {
                let all: BTreeSet<&str> = a.copies().collect();
                assert_eq!(all.len(), rf as usize, "{a:?}");
            }
            // Planned again after it ran: nothing left to do.
            let mut done = m.clone();
            for (id, a) in shards_after {
                done.shards.get_mut(&id).expect("shard").assignment = a;
            }
            assert_eq!(
                rebalance(&done, &BTreeMap::new()).expect("plan"),
                Vec::new()
            );
        }
    }

    #[test]
    fn a_drained_node_ends_with_nothing_and_the_rest_keep_rf_copies() {
        let m = map(8, 2, &["n1", "n2", "n3", "n4"], &["n1", "n2", "n3", "n4"]);
        let steps = drain(&m, "n2").expect("plan");
        let shards_after = after(&m, &steps);
        for a in shards_after.values() {
            assert!(!holds(a, "n2"), "{a:?}");
            assert_eq!(a.copies().count(), 2, "{a:?}");
        }
        // Primaries go first, by handover.
        let first_move = steps.iter().position(|s| matches!(s, Step::Move { .. }));
        let last_handover = steps
            .iter()
            .rposition(|s| matches!(s, Step::Handover { .. }));
        assert!(last_handover < first_move, "{steps:?}");
        // Three nodes, rf 3: nowhere to go, and min_sync 1 of 2 replicas allows a removal.
        let full = map(4, 3, &["n1", "n2", "n3"], &["n1", "n2", "n3"]);
        let steps = drain(&full, "n3").expect("plan");
        assert!(
            steps.iter().any(|s| matches!(s, Step::Remove { .. })),
            "{steps:?}"
        );
        // rf 2 on two nodes: refused.
        let two = map(4, 2, &["n1", "n2"], &["n1", "n2"]);
        assert!(drain(&two, "n2").is_err());
    }

    #[test]
    fn shards_made_on_one_node_get_their_copies_and_spread() {
        let m = map(8, 2, &["n1"], &["n1", "n2", "n3"]);
        let steps = rebalance(&m, &BTreeMap::new()).expect("plan");
        assert!(matches!(steps[0], Step::Copy { .. }), "{steps:?}");
        let nodes: Vec<String> = ["n1", "n2", "n3"].map(String::from).to_vec();
        let shards_after = after(&m, &steps);
        for a in shards_after.values() {
            assert_eq!(a.copies().count(), 2, "{a:?}");
        }
        let (copies, primaries) = loads(&shards_after, &nodes);
        let spread = |l: &BTreeMap<String, usize>| {
            l.values().max().unwrap_or(&0) - l.values().min().unwrap_or(&0)
        };
        assert!(spread(&copies) <= 1, "{copies:?}");
        assert!(spread(&primaries) <= 1, "{primaries:?}");
    }

    /// Of the shards a step may take, the one nearest half the byte gap goes.
    #[test]
    fn steps_take_the_shard_whose_bytes_even_the_two_nodes_out() {
        // n1 leads three shards, n2 none: one moves. Moving the 100-byte one leaves 30
        // against 100; the 20-byte one, 110 against 20.
        let m = map(3, 1, &["n1"], &["n1", "n2"]);
        let bytes = BTreeMap::from([(0, 10), (1, 20), (2, 100)]);
        let steps = rebalance(&m, &bytes).expect("plan");
        assert_eq!(
            steps,
            vec![Step::Move {
                shard: 2,
                from: "n1".into(),
                to: "n2".into(),
                primary: true
            }],
            "{steps:?}"
        );
        // Without bytes, the first shard.
        let steps = rebalance(&m, &BTreeMap::new()).expect("plan");
        assert_eq!(steps.first().map(Step::shard), Some(0), "{steps:?}");
    }

    #[test]
    fn rebalance_waits_for_every_member() {
        let mut m = map(8, 2, &["n1", "n2", "n3"], &["n1", "n2", "n3", "n4"]);
        m.nodes.remove("n4");
        assert!(rebalance(&m, &BTreeMap::new()).is_err());
    }
}
