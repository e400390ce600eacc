//! Moving a copy of a shard between nodes ([`Move`]): how a move starts, each step the
//! controller takes, and how one is undone. Pure functions of a shard's assignment, so the
//! same rules serve `chirpctl`, the controller and the tests.

use crate::map::{Handover, Move, MoveState, ShardAssignment, MOVE_ATTEMPTS};
use crate::{Error, Result};

/// How long the primary waits, writes paused, for a move's target to hold its last entry at
/// the cutover. The target is in the sync set by then (it holds every acknowledged write),
/// so it is normally a few entries behind at most.
pub const CUTOVER_TIMEOUT_MS: u64 = 10_000;

/// How many moves one node takes part in at once, as source or target: each copies a whole
/// shard over the node's disk and network.
pub const MAX_MOVES_PER_NODE: usize = 2;

/// `a` with a move of `from`'s copy to `to` started: `to` joins as a learner. `from` must
/// hold a copy (the primary's, by default, when `primary`; else the replica outside the sync
/// set, or the last replica) and `to` none.
pub fn start(
    a: &ShardAssignment,
    shard: u32,
    from: Option<&str>,
    to: &str,
    primary: bool,
    now_ms: u64,
) -> Result<ShardAssignment> {
    if let Some(m) = &a.moving {
        return Err(Error::Invalid(format!(
            "shard {shard} is already moving from {} to {} ({}); `chirpctl move abort {shard}` \
             undoes it",
            m.from,
            m.to,
            m.state.name()
        )));
    }
    if a.handover.is_some() {
        return Err(Error::Invalid(format!(
            "a handover of shard {shard} is under way; move it once that is done"
        )));
    }
    if a.primary == to || a.replicas.iter().chain(&a.learners).any(|n| n == to) {
        return Err(Error::Invalid(format!(
            "{to} already holds a copy of shard {shard}"
        )));
    }
    let from = match from {
        Some(f) => {
            if !a.copies().any(|c| c == f) {
                return Err(Error::Invalid(format!(
                    "{f} holds no copy of shard {shard} to move (its copies: {})",
                    a.copies().collect::<Vec<_>>().join(", ")
                )));
            }
            f.to_string()
        }
        None if primary => a.primary.clone(),
        None => a
            .replicas
            .iter()
            .rev()
            .find(|r| !a.sync.contains(r))
            .or_else(|| a.replicas.last())
            .cloned()
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "shard {shard} has no replica to move; move its primary with --role primary"
                ))
            })?,
    };
    let mut next = a.clone();
    next.learners.push(to.to_string());
    next.moving = Some(Move {
        primary: primary || from == a.primary,
        from,
        to: to.to_string(),
        state: MoveState::CatchingUp,
        started_ms: now_ms,
        attempts: 0,
    });
    Ok(next)
}

/// The next step of `a`'s move, if it can take one now (see [`Move`]); None while it waits
/// (for the target to catch up, or for the primary to carry out the handover).
pub fn step(a: &ShardAssignment, min_sync: u32) -> Option<ShardAssignment> {
    let m = a.moving.as_ref()?;
    let with = |state: MoveState| {
        let mut next = a.clone();
        if let Some(n) = next.moving.as_mut() {
            n.state = state;
        }
        next
    };
    match m.state {
        MoveState::CatchingUp => {
            let joined = a.replicas.contains(&m.to) && (min_sync == 0 || a.sync.contains(&m.to));
            (joined || a.primary == m.to).then(|| with(MoveState::InSync))
        }
        MoveState::InSync if m.primary && a.primary != m.to => {
            if a.handover.is_some() {
                return None;
            }
            let mut next = with(MoveState::Cutover);
            next.handover = Some(Handover {
                to: m.to.clone(),
                timeout_ms: CUTOVER_TIMEOUT_MS,
            });
            Some(next)
        }
        MoveState::InSync => Some(with(MoveState::Cleanup)),
        MoveState::Cutover if a.primary == m.to => Some(with(MoveState::Cleanup)),
        MoveState::Cutover if a.handover.is_none() => {
            // Called off (the target did not catch up in time, or a failover came first).
            let mut next = with(MoveState::InSync);
            let attempts = m.attempts + 1;
            if let Some(n) = next.moving.as_mut() {
                n.attempts = attempts;
            }
            if attempts >= MOVE_ATTEMPTS {
                return Some(undone(a));
            }
            Some(next)
        }
        MoveState::Cutover => None,
        // The source became the primary meanwhile (a failover): hand over first.
        MoveState::Cleanup if a.primary == m.from => {
            let mut next = with(MoveState::InSync);
            if let Some(n) = next.moving.as_mut() {
                n.primary = true;
            }
            Some(next)
        }
        MoveState::Cleanup => {
            let mut next = a.clone();
            next.replicas.retain(|n| *n != m.from);
            next.sync.retain(|n| *n != m.from);
            next.learners.retain(|n| *n != m.from);
            next.moving = None;
            Some(next)
        }
    }
}

/// How long a move's target may take to catch up before the move is undone: ten minutes,
/// plus the time to copy the shard's `shard_bytes` at 5 MB/s.
pub fn catch_up_limit_ms(shard_bytes: u64) -> u64 {
    600_000 + shard_bytes / 5_000
}

/// `a` with its move undone when its target has been catching up for longer than
/// [`catch_up_limit_ms`] of the shard's bytes at `now_ms` (Unix milliseconds); None
/// otherwise.
pub fn overdue(a: &ShardAssignment, now_ms: u64, shard_bytes: u64) -> Option<ShardAssignment> {
    let m = a.moving.as_ref()?;
    let late = now_ms.saturating_sub(m.started_ms) > catch_up_limit_ms(shard_bytes);
    (m.state == MoveState::CatchingUp && late).then(|| undone(a))
}

/// `a` with its move undone: the target's copy taken back out, a handover to it withdrawn.
fn undone(a: &ShardAssignment) -> ShardAssignment {
    let mut next = a.clone();
    if let Some(m) = a.moving.as_ref() {
        next.replicas.retain(|n| *n != m.to);
        next.sync.retain(|n| *n != m.to);
        next.learners.retain(|n| *n != m.to);
        if next.handover.as_ref().is_some_and(|h| h.to == m.to) {
            next.handover = None;
        }
    }
    next.moving = None;
    next
}

/// `a` with its move aborted: possible until the cutover made the target the primary (after
/// that the move can only finish).
pub fn abort(a: &ShardAssignment, shard: u32) -> Result<ShardAssignment> {
    let Some(m) = &a.moving else {
        return Err(Error::Invalid(format!("shard {shard} is not moving")));
    };
    if a.primary == m.to || m.state == MoveState::Cleanup {
        return Err(Error::Invalid(format!(
            "shard {shard}'s move to {} is past its cutover: it can only finish",
            m.to
        )));
    }
    Ok(undone(a))
}

/// What a move will do, step by step, in words (`chirpctl shard move --dry-run`).
pub fn plan_text(a: &ShardAssignment, shard: u32) -> Vec<String> {
    let Some(m) = &a.moving else {
        return Vec::new();
    };
    let mut steps = vec![
        format!(
            "{} joins shard {shard} as a learner and copies it from {} (a checkpoint if the \
             oplog no longer reaches back, image files included, then the oplog)",
            m.to, a.primary
        ),
        format!(
            "the controller makes {} a replica once it is within a few entries of {}, and {} \
             takes it into the sync set once it holds every write",
            m.to, a.primary, a.primary
        ),
    ];
    if m.primary && a.primary != m.to {
        steps.push(format!(
            "{} hands shard {shard} over to {} (writes to the shard pause until {} holds its \
             last entry, at most {} s): epoch {} -> {}",
            a.primary,
            m.to,
            m.to,
            CUTOVER_TIMEOUT_MS / 1000,
            a.epoch,
            a.epoch + 1
        ));
    }
    steps.push(format!(
        "{}'s copy is taken out of shard {shard}; {} closes it and moves its files to dropped/",
        m.from, m.from
    ));
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn shard() -> ShardAssignment {
        ShardAssignment {
            epoch: 3,
            primary: "n1".into(),
            replicas: names(&["n2", "n3"]),
            sync: names(&["n2"]),
            learners: Vec::new(),
            handover: None,
            moving: None,
        }
    }

    /// The controller's steps, with what the cluster does in between: the learner caught
    /// up, the primary took it into the sync set, carried out the handover.
    #[test]
    fn a_primary_move_runs_every_step_and_ends_without_the_source() {
        let a = start(&shard(), 0, None, "n4", true, 1).expect("start");
        assert_eq!(a.learners, names(&["n4"]));
        let m = a.moving.clone().expect("moving");
        assert_eq!((m.from.as_str(), m.primary), ("n1", true));
        assert_eq!(step(&a, 1), None, "a learner waits");
        let mut b = a.clone();
        b.learners.clear();
        b.replicas.push("n4".into());
        assert_eq!(step(&b, 1), None, "a replica outside the sync set waits");
        b.sync.push("n4".into());
        let c = step(&b, 1).expect("in sync");
        assert_eq!(c.moving.as_ref().map(|m| m.state), Some(MoveState::InSync));
        let d = step(&c, 1).expect("cutover");
        assert_eq!(d.handover.as_ref().map(|h| h.to.as_str()), Some("n4"));
        assert_eq!(step(&d, 1), None, "waits for the primary");
        let e = d.handed_over("n4");
        assert_eq!(e.primary, "n4");
        let f = step(&e, 1).expect("cleanup");
        let g = step(&f, 1).expect("done");
        assert_eq!(g.moving, None);
        assert_eq!(g.primary, "n4");
        assert!(!g.copies().any(|c| c == "n1"), "{g:?}");
        assert!(!g.sync.contains(&"n1".to_string()), "{g:?}");
        assert_eq!(step(&g, 1), None);
    }

    #[test]
    fn a_replica_move_takes_the_replica_outside_the_sync_set_and_never_hands_over() {
        let a = start(&shard(), 0, None, "n4", false, 1).expect("start");
        assert_eq!(a.moving.as_ref().map(|m| m.from.as_str()), Some("n3"));
        let mut b = a.clone();
        b.learners.clear();
        b.replicas.push("n4".into());
        b.sync.push("n4".into());
        let c = step(&step(&b, 1).expect("in sync"), 1).expect("cleanup");
        assert_eq!(c.handover, None);
        let d = step(&c, 1).expect("done");
        assert_eq!(d.replicas, names(&["n2", "n4"]));
        assert_eq!(d.primary, "n1");
        // Async clusters (min_sync 0): a replica is enough.
        let mut e = a.clone();
        e.learners.clear();
        e.replicas.push("n4".into());
        assert!(step(&e, 0).is_some());
    }

    #[test]
    fn called_off_handovers_are_retried_then_the_move_is_undone() {
        let mut a = start(&shard(), 0, None, "n4", true, 1).expect("start");
        a.learners.clear();
        a.replicas.push("n4".into());
        a.sync.push("n4".into());
        let mut cur = step(&a, 1).expect("in sync");
        for attempt in 1..=MOVE_ATTEMPTS {
            cur = step(&cur, 1).expect("cutover");
            cur.handover = None; // the primary called it off
            cur = step(&cur, 1).expect("after the call-off");
            if attempt < MOVE_ATTEMPTS {
                assert_eq!(cur.moving.as_ref().map(|m| m.attempts), Some(attempt));
            }
        }
        assert_eq!(cur.moving, None);
        assert_eq!(cur.replicas, names(&["n2", "n3"]));
        assert_eq!(cur.sync, names(&["n2"]));
        assert_eq!(cur.primary, "n1");
    }

    #[test]
    fn abort_undoes_until_the_cutover_and_not_after() {
        let a = start(&shard(), 0, None, "n4", true, 1).expect("start");
        assert_eq!(abort(&a, 0).expect("abort"), shard());
        let mut b = a.clone();
        b.learners.clear();
        b.replicas.push("n4".into());
        b.sync.push("n4".into());
        let c = step(&step(&b, 1).expect("in sync"), 1).expect("cutover");
        let undone = abort(&c, 0).expect("abort at cutover");
        assert_eq!(undone.handover, None);
        assert_eq!(undone.replicas, names(&["n2", "n3"]));
        assert!(abort(&c.handed_over("n4"), 0).is_err());
    }

    #[test]
    fn a_move_is_refused_onto_a_copy_or_from_none_or_twice() {
        assert!(start(&shard(), 0, None, "n2", false, 1).is_err());
        assert!(start(&shard(), 0, Some("n9"), "n4", false, 1).is_err());
        let a = start(&shard(), 0, None, "n4", false, 1).expect("start");
        assert!(start(&a, 0, None, "n5", false, 1).is_err());
        assert!(abort(&shard(), 0).is_err());
    }

    #[test]
    fn a_target_that_never_catches_up_is_given_time_by_the_shards_size_then_undone() {
        let a = start(&shard(), 0, None, "n4", true, 1_000).expect("start");
        let gb = 1_000_000_000;
        assert_eq!(catch_up_limit_ms(gb), 600_000 + 200_000);
        assert_eq!(overdue(&a, 1_000 + 800_000, gb), None);
        assert_eq!(overdue(&a, 1_000 + 800_001, gb), Some(shard()));
        // Past catching up, the move is the controller's to finish, however long it took.
        let mut b = a.clone();
        b.moving.as_mut().expect("moving").state = MoveState::InSync;
        assert_eq!(overdue(&b, u64::MAX, 0), None);
    }

    /// A failover made the source of a replica move the primary: it hands over first.
    #[test]
    fn a_source_that_became_primary_hands_over_before_it_is_taken_out() {
        let mut a = start(&shard(), 0, Some("n2"), "n4", false, 1).expect("start");
        a.moving.as_mut().expect("moving").state = MoveState::Cleanup;
        let b = crate::controller::failed_over(&a, "n2");
        let c = step(&b, 1).expect("back to in sync");
        assert_eq!(c.moving.as_ref().map(|m| m.primary), Some(true));
        assert_eq!(c.moving.as_ref().map(|m| m.state), Some(MoveState::InSync));
    }
}
