//! The placement planner: pure functions from members to shard assignments.
//!
//! [`initial_placement`] shares out a new cluster's shards. Its guarantees, each tested
//! (the proptest draws shard counts, replication factors and member sets):
//! - every shard has `min(rf, members)` copies on distinct members: a primary and the rest
//!   as replicas;
//! - copies per member differ by at most one, and so do primaries per member;
//! - the sync set is the first `min_sync` replicas (fewer if there are fewer replicas);
//! - the same inputs give the same map (members are taken in name order, whatever order
//!   they were given in).
//!
//! How: members are sorted and numbered 0..n. Shards go in blocks of n: in a full block the
//! k-th shard has its copies on members k, k+1, ..., k+r-1 (mod n) with k as primary, so a
//! block gives every member exactly r copies and one primary. The m < n shards left over
//! lay their copies out round-robin (shard k on members k·r .. k·r+r-1, mod n), which spreads
//! those m·r copies evenly, and each takes as primary the first of its copies not yet a
//! primary among them. That such a copy always exists is what the tests check: every
//! remainder for up to 40 members, and the proptest beyond.

use crate::map::ShardAssignment;

/// The assignments of shards `0..shards` (the vector's index is the shard id) over
/// `members`, with `rf` copies each (capped at the member count) at epoch 1, no learners.
/// Empty when there are no members.
pub fn initial_placement(
    shards: u32,
    rf: u32,
    min_sync: u32,
    members: &[String],
) -> Vec<ShardAssignment> {
    let mut nodes: Vec<&String> = members.iter().collect();
    nodes.sort();
    nodes.dedup();
    let n = nodes.len();
    if n == 0 {
        return Vec::new();
    }
    let r = (rf.max(1) as usize).min(n);
    let shards = shards as usize;
    let full = shards / n * n;
    let mut plan: Vec<(usize, Vec<usize>)> = Vec::with_capacity(shards);
    for s in 0..full {
        let k = s % n;
        plan.push((k, (0..r).map(|j| (k + j) % n).collect()));
    }
    let mut taken = vec![false; n];
    for k in 0..shards - full {
        let copies: Vec<usize> = (0..r).map(|j| (k * r + j) % n).collect();
        // Fallback never expected (see the module doc); it keeps the function total.
        let primary = copies
            .iter()
            .copied()
            .find(|&c| !taken[c])
            .unwrap_or(copies[0]);
        taken[primary] = true;
        let mut ordered = vec![primary];
        ordered.extend(copies.iter().copied().filter(|&c| c != primary));
        plan.push((primary, ordered));
    }
    plan.into_iter()
        .map(|(primary, copies)| {
            let replicas: Vec<String> = copies[1..].iter().map(|&c| nodes[c].clone()).collect();
            let sync = replicas.iter().take(min_sync as usize).cloned().collect();
            ShardAssignment {
                epoch: 1,
                primary: nodes[primary].clone(),
                replicas,
                sync,
                learners: Vec::new(),
                handover: None,
                moving: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node{i:02}")).collect()
    }

    /// Checks every guarantee of the module doc; returns (primaries, copies) per member.
    fn check(
        plan: &[ShardAssignment],
        shards: u32,
        rf: u32,
        min_sync: u32,
        members: &[String],
    ) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
        let distinct: BTreeSet<&String> = members.iter().collect();
        let n = distinct.len();
        assert_eq!(plan.len(), if n == 0 { 0 } else { shards as usize });
        let r = (rf as usize).min(n);
        let mut primaries: BTreeMap<String, usize> =
            distinct.iter().map(|m| ((*m).clone(), 0)).collect();
        let mut copies = primaries.clone();
        for a in plan {
            assert_eq!(a.epoch, 1);
            assert!(a.learners.is_empty());
            let on: BTreeSet<&str> = a.copies().collect();
            assert_eq!(on.len(), r, "{a:?}: copies on distinct members");
            assert_eq!(a.replicas.len(), r - 1);
            let sync_len = (min_sync as usize).min(a.replicas.len());
            assert_eq!(a.sync, a.replicas[..sync_len].to_vec());
            *primaries.get_mut(&a.primary).expect("a member") += 1;
            for c in a.copies() {
                *copies.get_mut(c).expect("a member") += 1;
            }
        }
        for counts in [&primaries, &copies] {
            let (lo, hi) = (counts.values().min(), counts.values().max());
            if let (Some(lo), Some(hi)) = (lo, hi) {
                assert!(hi - lo <= 1, "uneven: {counts:?}");
            }
        }
        (primaries, copies)
    }

    #[test]
    fn sixty_four_shards_on_three_nodes() {
        let members = names(3);
        let plan = initial_placement(64, 3, 1, &members);
        let (primaries, copies) = check(&plan, 64, 3, 1, &members);
        let mut p: Vec<usize> = primaries.values().copied().collect();
        p.sort();
        assert_eq!(p, vec![21, 21, 22]);
        assert!(copies.values().all(|&c| c == 64));
        assert_eq!(plan[0].primary, "node00");
        assert_eq!(plan[0].replicas, vec!["node01", "node02"]);
        assert_eq!(plan[0].sync, vec!["node01"]);
    }

    #[test]
    fn rf_is_capped_at_the_member_count() {
        let members = names(2);
        let plan = initial_placement(5, 3, 1, &members);
        check(&plan, 5, 3, 1, &members);
        assert!(plan.iter().all(|a| a.replicas.len() == 1));
    }

    #[test]
    fn rf_one_has_no_sync_set() {
        let members = names(4);
        let plan = initial_placement(10, 1, 1, &members);
        check(&plan, 10, 1, 1, &members);
        assert!(plan
            .iter()
            .all(|a| a.replicas.is_empty() && a.sync.is_empty()));
    }

    #[test]
    fn no_members_no_plan() {
        assert!(initial_placement(64, 3, 1, &[]).is_empty());
    }

    #[test]
    fn order_and_duplicates_of_members_do_not_matter() {
        let mut members = names(5);
        let plan = initial_placement(37, 3, 2, &members);
        members.reverse();
        members.push("node03".into());
        assert_eq!(initial_placement(37, 3, 2, &members), plan);
    }

    #[test]
    fn every_remainder_up_to_forty_members() {
        for n in 1..=40 {
            let members = names(n);
            for rf in 1..=n.min(7) as u32 {
                for shards in [n as u32 - 1, n as u32, 2 * n as u32 + 1]
                    .into_iter()
                    .chain(1..n as u32)
                    .filter(|&s| s > 0)
                {
                    let plan = initial_placement(shards, rf, 1, &members);
                    check(&plan, shards, rf, 1, &members);
                }
            }
        }
    }

    proptest! {
        #[test]
        fn placement_is_even_and_deterministic(
            shards in 1u32..=1024,
            n in 1usize..=24,
            rf in 1u32..=6,
            min_sync in 0u32..=3,
        ) {
            let members = names(n);
            let plan = initial_placement(shards, rf, min_sync, &members);
            check(&plan, shards, rf, min_sync, &members);
            prop_assert_eq!(initial_placement(shards, rf, min_sync, &members), plan);
        }
    }
}
