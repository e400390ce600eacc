//! The hot-tweet cache: an LRU of tweet documents bounded in bytes, in front of the `tweets`
//! column family on every read path.
//!
//! It is split into independently locked segments by tweet id so readers on different cores
//! rarely contend. Deletes must never leave a stale entry behind, even when a reader fetched
//! the document from storage just before the delete and inserts it just after: each segment
//! has an invalidation epoch, a reader notes it before reading storage, and its insert is
//! dropped if any invalidation happened in between.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use lru::LruCache;

use crate::doc::TweetDoc;

const SEGMENTS: usize = 16;
/// Bookkeeping bytes charged per entry on top of its strings.
const ENTRY_OVERHEAD: usize = 160;
/// Keys, ids and the date of a tweet's API encoding, beyond its strings.
const ENCODING_OVERHEAD: usize = 160;

/// Counters of the cache, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CacheStats {
    /// Lookups answered from memory.
    pub hits: u64,
    /// Lookups that went to storage.
    pub misses: u64,
    /// Entries pushed out to make room.
    pub evictions: u64,
    /// Bytes charged for the entries held.
    pub bytes: u64,
    /// Entries held.
    pub entries: u64,
    /// The byte budget.
    pub capacity_bytes: u64,
}

struct Segment {
    lru: LruCache<u64, Arc<TweetDoc>>,
    bytes: usize,
    epoch: u64,
}

/// A byte-bounded LRU of tweets.
pub struct TweetCache {
    segments: Vec<Mutex<Segment>>,
    segment_budget: usize,
    capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
}

/// The epoch a reader saw before going to storage; see the module docs.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

/// Bytes an entry is charged for: the document, and its API encoding (made on first use, see
/// `TweetDoc::encoded`), which is about the same bytes again plus keys, ids and a date.
pub fn weight(t: &TweetDoc) -> usize {
    let extra = if t.extra.is_empty() {
        0
    } else {
        serde_json::to_vec(&t.extra).map(|v| v.len()).unwrap_or(0)
    };
    let fields = t.text.len()
        + t.author_handle.len()
        + t.hashtags.iter().map(|h| h.len() + 24).sum::<usize>()
        + t.media
            .iter()
            .map(|m| m.id.len() + m.url.len() + m.content_type.len() + 64)
            .sum::<usize>()
        + extra;
    ENTRY_OVERHEAD + 2 * fields + ENCODING_OVERHEAD
}

impl TweetCache {
    /// A cache holding at most about `capacity` bytes (0 disables it).
    pub fn new(capacity: usize) -> Self {
        TweetCache {
            segments: (0..SEGMENTS)
                .map(|_| {
                    Mutex::new(Segment {
                        lru: LruCache::unbounded(),
                        bytes: 0,
                        epoch: 0,
                    })
                })
                .collect(),
            segment_budget: capacity / SEGMENTS,
            capacity,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    fn segment(&self, id: u64) -> MutexGuard<'_, Segment> {
        // Low id bits are the per-millisecond sequence and spread ids evenly.
        let s = &self.segments[(id % SEGMENTS as u64) as usize];
        s.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks a tweet up; on a miss, returns the ticket to present when inserting.
    pub fn get(&self, id: u64) -> Result<Arc<TweetDoc>, Ticket> {
        let mut seg = self.segment(id);
        match seg.lru.get(&id) {
            Some(t) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Ok(Arc::clone(t))
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                Err(Ticket(seg.epoch))
            }
        }
    }

    /// Inserts a tweet read from storage, unless an invalidation happened since `ticket`.
    pub fn insert_read(&self, tweet: Arc<TweetDoc>, ticket: Ticket) {
        let mut seg = self.segment(tweet.id);
        if seg.epoch == ticket.0 {
            self.put(&mut seg, tweet);
        }
    }

    /// Inserts a tweet just written (nothing can be stale about it).
    pub fn insert_new(&self, tweet: Arc<TweetDoc>) {
        let mut seg = self.segment(tweet.id);
        self.put(&mut seg, tweet);
    }

    fn put(&self, seg: &mut Segment, tweet: Arc<TweetDoc>) {
        let w = weight(&tweet);
        if w > self.segment_budget {
            return;
        }
        if let Some(old) = seg.lru.put(tweet.id, tweet) {
            seg.bytes -= weight(&old);
        }
        seg.bytes += w;
        while seg.bytes > self.segment_budget {
            match seg.lru.pop_lru() {
                Some((_, old)) => {
                    seg.bytes -= weight(&old);
                    self.evictions.fetch_add(1, Ordering::Relaxed);
                }
                None => break,
            }
        }
    }

    /// Drops every tweet and fences off in-flight reads (after a shard was replaced wholesale
    /// by a checkpoint, when any cached tweet may be stale).
    pub fn clear(&self) {
        for seg in &self.segments {
            let mut seg = seg.lock().unwrap_or_else(|p| p.into_inner());
            seg.epoch += 1;
            seg.lru.clear();
            seg.bytes = 0;
        }
    }

    /// Drops a tweet (after its delete is durable) and fences off in-flight reads of it.
    pub fn invalidate(&self, id: u64) {
        let mut seg = self.segment(id);
        seg.epoch += 1;
        if let Some(old) = seg.lru.pop(&id) {
            seg.bytes -= weight(&old);
        }
    }

    /// Current counters.
    pub fn stats(&self) -> CacheStats {
        let (mut bytes, mut entries) = (0u64, 0u64);
        for s in &self.segments {
            let seg = s.lock().unwrap_or_else(|p| p.into_inner());
            bytes += seg.bytes as u64;
            entries += seg.lru.len() as u64;
        }
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            bytes,
            entries,
            capacity_bytes: self.capacity as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tweet(id: u64, text: &str) -> Arc<TweetDoc> {
        Arc::new(TweetDoc {
            id,
            author_id: 1,
            author_handle: "a".into(),
            text: text.into(),
            hashtags: vec![],
            media: vec![],
            created_at_ms: 0,
            extra: Default::default(),
            rest: Default::default(),
            encoded: Default::default(),
        })
    }

    #[test]
    fn hits_misses_and_byte_bound() {
        let cache = TweetCache::new(SEGMENTS * 1000);
        assert!(cache.get(1).is_err());
        cache.insert_new(tweet(1, "x"));
        assert_eq!(cache.get(1).map(|t| t.id).ok(), Some(1));
        // Fill one segment far past its budget: it stays within it.
        for i in 0..100 {
            cache.insert_new(tweet(i * SEGMENTS as u64, &"y".repeat(100)));
        }
        let stats = cache.stats();
        assert!(stats.bytes <= stats.capacity_bytes, "{stats:?}");
        assert!(stats.evictions > 0);
        assert_eq!((stats.hits, stats.misses), (1, 1));
        // The most recent entry survived, the oldest did not.
        assert!(cache.get(99 * SEGMENTS as u64).is_ok());
        assert!(cache.get(SEGMENTS as u64).is_err());
    }

    #[test]
    fn a_read_racing_a_delete_is_not_cached() {
        let cache = TweetCache::new(1 << 20);
        let ticket = match cache.get(7) {
            Err(t) => t,
            Ok(_) => panic!("empty cache hit"),
        };
        cache.invalidate(7);
        cache.insert_read(tweet(7, "stale"), ticket);
        assert!(cache.get(7).is_err());
        cache.insert_new(tweet(7, "fresh"));
        cache.invalidate(7);
        assert!(cache.get(7).is_err());
    }
}
