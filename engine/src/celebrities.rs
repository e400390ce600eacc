//! The celebrity set: authors with more followers than the threshold, whose tweets are not
//! fanned out but merged into their followers' feeds at read time.
//!
//! Kept in memory for the users of the shards held here, loaded from each shard's follower
//! counters when the shard is adopted (or replaced by a checkpoint) and updated as follows
//! and unfollows (local or replicated) change a count. On a cluster node the celebrities of
//! shards held elsewhere are learnt from their owners every few seconds (the `Celebrities`
//! step), so feeds read here merge them too.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use crate::error::Result;
use crate::keys::{self, Counter, CF_COUNTERS};
use crate::placement::{Placement, ShardId};
use crate::shard::Shard;

/// Authors past the celebrity threshold, among the users of the shards held here.
pub(crate) struct Celebrities {
    threshold: u64,
    set: RwLock<HashSet<u64>>,
    /// Moved whenever the set changes (cached home pages record it).
    generation: AtomicU64,
}

impl Celebrities {
    /// An empty set for authors with more than `threshold` followers.
    pub(crate) fn new(threshold: u64) -> Self {
        Celebrities {
            threshold,
            set: RwLock::new(HashSet::new()),
            generation: AtomicU64::new(0),
        }
    }

    /// A number that changes whenever the set does.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn replace(&self, set: &mut HashSet<u64>, s: ShardId, placement: &Placement, ids: Vec<u64>) {
        let keep: HashSet<u64> = ids.iter().copied().collect();
        let before = set.len();
        set.retain(|user| placement.of_user(*user) != s || keep.contains(user));
        let mut changed = set.len() != before;
        for id in ids {
            changed |= set.insert(id);
        }
        if changed {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Whether an author is past the threshold.
    pub(crate) fn contains(&self, user_id: u64) -> bool {
        self.set
            .read()
            .map(|s| s.contains(&user_id))
            .unwrap_or(false)
    }

    /// Records a user's new follower count.
    pub(crate) fn note(&self, user_id: u64, followers: u64) {
        if let Ok(mut set) = self.set.write() {
            let changed = if followers > self.threshold {
                set.insert(user_id)
            } else {
                set.remove(&user_id)
            };
            if changed {
                self.generation.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// The celebrities known among a shard's users.
    pub(crate) fn of_shard(&self, placement: &Placement, s: ShardId) -> Vec<u64> {
        self.set
            .read()
            .map(|set| {
                set.iter()
                    .copied()
                    .filter(|&u| placement.of_user(u) == s)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Replaces what is known of a shard held elsewhere with `ids`.
    pub(crate) fn learn(&self, placement: &Placement, s: ShardId, ids: Vec<u64>) {
        if let Ok(mut set) = self.set.write() {
            self.replace(&mut set, s, placement, ids);
        }
    }

    /// (Re)loads the celebrities among a shard's users from its follower counters, dropping
    /// what was known of that shard's users before.
    pub(crate) fn load(&self, placement: &Placement, shard: &Shard) -> Result<()> {
        let s: ShardId = shard.index();
        let mut found = Vec::new();
        for (k, v) in shard.scan_all(CF_COUNTERS)? {
            if let Some((user, kind)) = keys::decode_counter(&k) {
                let followers = keys::decode_counter_value(&v).max(0) as u64;
                if kind == Counter::Followers as u8 && followers > self.threshold {
                    found.push(user);
                }
            }
        }
        if let Ok(mut set) = self.set.write() {
            self.replace(&mut set, s, placement, found);
        }
        Ok(())
    }
}
