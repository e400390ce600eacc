//! The home-page cache: the first page of a reader's home feed as the merge left it (tweet
//! ids, newest first), kept in memory so reading it again skips the following scan, the
//! `home` rows and the celebrities' timelines. Documents are still hydrated through the
//! hot-tweet cache on every read, so a deleted tweet is never shown: a page with one is
//! merged again.
//!
//! A page stays good while nothing it was built from changed. Every write a shard commits or
//! applies (as a primary or a replica, see [`FeedVersions::note`]) bumps a version for each
//! user whose `home` rows, `following` rows or own timeline (`user_tweets`) it touches; a
//! cached page records the reader's version and those of the celebrities it merged, read
//! before the merge read storage, and is used only while they are unchanged. Versions live in
//! a fixed table indexed by a hash of the user id, so two users may share one: that only
//! costs a needless merge. Whatever changes many feeds at once (a shard's files replaced or
//! ingested, the celebrity set) moves a global version that every page records.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use lru::LruCache;

use crate::batch::Op;
use crate::keys::{self, CF_FOLLOWING, CF_HOME, CF_USER_TWEETS};

/// Version slots: 8 MiB; about one user per slot at a million users.
const SLOTS: usize = 1 << 20;
const SEGMENTS: usize = 16;

/// Per-user versions of what a home page is built from.
pub struct FeedVersions {
    slots: Box<[AtomicU64]>,
    global: AtomicU64,
}

impl Default for FeedVersions {
    fn default() -> Self {
        Self::new()
    }
}

fn slot_of(user: u64) -> usize {
    (user.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 44) as usize & (SLOTS - 1)
}

impl FeedVersions {
    /// All versions at zero.
    pub fn new() -> Self {
        FeedVersions {
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            global: AtomicU64::new(0),
        }
    }

    /// The version of what a user's page depends on.
    pub(crate) fn of(&self, user: u64) -> u64 {
        self.slots[slot_of(user)].load(Ordering::SeqCst)
    }

    /// The version every page depends on.
    pub(crate) fn global(&self) -> u64 {
        self.global.load(Ordering::SeqCst)
    }

    fn bump(&self, user: u64) {
        self.slots[slot_of(user)].fetch_add(1, Ordering::SeqCst);
    }

    /// Makes every cached page stale (files replaced or ingested, the celebrity set moved).
    pub fn bump_all(&self) {
        self.global.fetch_add(1, Ordering::SeqCst);
    }

    /// Records committed (or applied) operations; called after they are visible to reads.
    pub fn note(&self, ops: &[Op]) {
        for op in ops {
            if matches!(op.cf_name(), CF_HOME | CF_FOLLOWING | CF_USER_TWEETS) {
                // Every key of these families starts with its owner's id (a range delete's
                // start key too).
                match op.key.get(..8).and_then(keys::decode_id) {
                    Some(owner) => self.bump(owner),
                    None => self.bump_all(),
                }
            }
        }
    }
}

/// What a cached page was built from, read before the merge read storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Basis {
    /// [`FeedVersions::global`].
    pub global: u64,
    /// The celebrity set's generation.
    pub celebrities: u64,
    /// The reader's version.
    pub reader: u64,
    /// Each celebrity merged, with their version.
    pub merged: Vec<(u64, u64)>,
}

struct Page {
    limit: usize,
    basis: Basis,
    ids: Vec<u64>,
}

/// A bounded LRU of first home pages by reader.
pub(crate) struct HomeCache {
    segments: Vec<Mutex<LruCache<u64, Page>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl HomeCache {
    /// Room for `entries` pages (0: the cache is off).
    pub(crate) fn new(entries: usize) -> Self {
        let per = entries.div_ceil(SEGMENTS);
        let segments = match NonZeroUsize::new(per) {
            Some(per) => (0..SEGMENTS)
                .map(|_| Mutex::new(LruCache::new(per)))
                .collect(),
            None => Vec::new(),
        };
        HomeCache {
            segments,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn segment(&self, reader: u64) -> Option<&Mutex<LruCache<u64, Page>>> {
        if self.segments.is_empty() {
            return None;
        }
        self.segments.get(slot_of(reader) % SEGMENTS)
    }

    /// The page of `limit` tweets cached for `reader`, if it is still good: `current` tells
    /// what the basis is now (the reader's, each merged celebrity's version).
    pub(crate) fn get(
        &self,
        reader: u64,
        limit: usize,
        global: u64,
        celebrities: u64,
        versions: &FeedVersions,
    ) -> Option<Vec<u64>> {
        let segment = self.segment(reader)?;
        let found = {
            let mut lru = lock(segment);
            lru.get(&reader)
                .filter(|p| {
                    p.limit == limit
                        && p.basis.global == global
                        && p.basis.celebrities == celebrities
                        && p.basis.reader == versions.of(reader)
                        && p.basis.merged.iter().all(|&(c, v)| versions.of(c) == v)
                })
                .map(|p| p.ids.clone())
        };
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Keeps a page merged from `basis`.
    pub(crate) fn put(&self, reader: u64, limit: usize, basis: Basis, ids: Vec<u64>) {
        if let Some(segment) = self.segment(reader) {
            lock(segment).put(reader, Page { limit, basis, ids });
        }
    }

    /// (hits, misses) since the node opened.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Batch;

    #[test]
    fn writes_to_a_users_feed_inputs_move_only_that_users_version() {
        let v = FeedVersions::new();
        let (alice, bob) = (17u64, 4242u64);
        let before = (v.of(alice), v.of(bob), v.global());
        let mut b = Batch::new();
        b.put(CF_HOME, keys::pair_key(alice, 99), keys::id_key(bob));
        b.put(crate::keys::CF_TWEETS, keys::id_key(99), b"doc".to_vec());
        v.note(b.ops());
        assert_eq!(v.of(alice), before.0 + 1);
        assert_eq!(v.of(bob), before.1);
        assert_eq!(v.global(), before.2);
        let mut b = Batch::new();
        b.delete(CF_FOLLOWING, keys::pair_key(bob, alice));
        b.put(CF_USER_TWEETS, keys::pair_key(alice, 100), Vec::new());
        v.note(b.ops());
        assert_eq!((v.of(alice), v.of(bob)), (before.0 + 2, before.1 + 1));
    }

    #[test]
    fn a_page_is_served_only_while_its_basis_holds() {
        let v = FeedVersions::new();
        let cache = HomeCache::new(64);
        let (reader, celeb) = (1u64, 2u64);
        let basis = Basis {
            global: v.global(),
            celebrities: 0,
            reader: v.of(reader),
            merged: vec![(celeb, v.of(celeb))],
        };
        cache.put(reader, 20, basis, vec![30, 20, 10]);
        assert_eq!(cache.get(reader, 20, 0, 0, &v), Some(vec![30, 20, 10]));
        assert_eq!(cache.get(reader, 10, 0, 0, &v), None, "another page size");
        assert_eq!(cache.get(reader, 20, 0, 1, &v), None, "celebrity set moved");
        let mut b = Batch::new();
        b.put(CF_USER_TWEETS, keys::pair_key(celeb, 40), Vec::new());
        v.note(b.ops());
        assert_eq!(cache.get(reader, 20, 0, 0, &v), None, "a celebrity posted");
        assert_eq!(HomeCache::new(0).get(reader, 20, 0, 0, &v), None);
    }
}
