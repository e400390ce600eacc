//! Boolean tag queries answered newest-first with exact cursor pagination.
//!
//! # Why results are exact even though doc order ≠ id order
//!
//! For `query(q, before, limit)` we return the `limit` largest live matching
//! ids below `before`, in descending order, by walking matching docs from
//! the highest doc number down while keeping a bounded min-heap of the best
//! ids seen:
//!
//! 1. Start: docs at or past `end_below(before)` all have id >= `before`
//!    (see `order.rs`), so skipping them loses nothing.
//! 2. Every visited doc is filtered exactly (tombstone, `id < before`).
//! 3. Stop at doc `d` once the heap is full and the largest id among docs
//!    `[0, d)` is below the heap's minimum: no unvisited doc can enter.
//!
//! So each call is the exact top-`limit` of `{ live matches with id < before }`.
//! Paging with `before = last id of the previous page` therefore yields every
//! match exactly once, in strictly descending id order (live ids are unique),
//! provided the index is not mutated between pages. When ids arrive sorted the
//! stop rule fires right after the `limit`-th hit, so a page costs
//! O(log n + limit) plus tombstone skips.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use roaring::RoaringBitmap;

use crate::index::TagIndex;

/// A hashtag query over already-normalized tag strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// Tweets carrying this tag.
    Tag(String),
    /// Tweets carrying every listed tag; an empty list matches nothing.
    All(Vec<String>),
    /// Tweets carrying at least one listed tag; an empty list matches nothing.
    Any(Vec<String>),
}

// Heap capacity is only a hint; capping it stops `limit = usize::MAX`
// from trying to allocate the world up front.
const MAX_PREALLOC: usize = 1024;

impl TagIndex {
    /// Returns up to `limit` matching tweet ids below `before`, newest (largest id) first.
    pub fn query(&self, q: &Query, before: Option<u64>, limit: usize) -> Vec<u64> {
        if limit == 0 {
            return Vec::new();
        }
        let end = match before {
            Some(bound) => self.order.end_below(bound),
            None => self.order.len(),
        };
        // Doc numbers are u32, so `end - 1` always fits; the fallback is unreachable.
        let Some(last) = end.checked_sub(1).and_then(|d| u32::try_from(d).ok()) else {
            return Vec::new();
        };
        let Some(candidates) = self.candidates(q) else {
            return Vec::new();
        };

        let mut best: BinaryHeap<Reverse<u64>> = BinaryHeap::with_capacity(limit.min(MAX_PREALLOC));
        for doc in candidates.range(..=last).rev() {
            if self.deleted.contains(doc) {
                continue;
            }
            let Some(id) = self.order.id(doc) else {
                continue;
            };
            if before.is_some_and(|bound| id >= bound) {
                continue;
            }
            if best.len() < limit {
                best.push(Reverse(id));
            } else if let Some(mut worst) = best.peek_mut().filter(|w| id > w.0) {
                *worst = Reverse(id);
            }
            if best.len() == limit {
                let floor = best.peek().map_or(0, |w| w.0);
                if self
                    .order
                    .max_before(doc as usize)
                    .is_none_or(|max| max < floor)
                {
                    break;
                }
            }
        }
        // Ascending Reverse<id> is descending id.
        best.into_sorted_vec()
            .into_iter()
            .map(|Reverse(id)| id)
            .collect()
    }

    /// Postings matching `q`, or `None` when nothing can match.
    fn candidates(&self, q: &Query) -> Option<Cow<'_, RoaringBitmap>> {
        match q {
            Query::Tag(tag) => self.tags.get(tag.as_str()).map(Cow::Borrowed),
            Query::All(tags) => {
                let mut lists = Vec::with_capacity(tags.len());
                for tag in tags {
                    lists.push(self.tags.get(tag.as_str())?);
                }
                // Intersecting from the smallest list keeps every step small.
                lists.sort_by_key(|postings| postings.len());
                let (first, rest) = lists.split_first()?;
                if rest.is_empty() {
                    return Some(Cow::Borrowed(*first));
                }
                let mut acc = (*first).clone();
                for postings in rest {
                    acc &= *postings;
                    if acc.is_empty() {
                        return None;
                    }
                }
                Some(Cow::Owned(acc))
            }
            Query::Any(tags) => {
                let mut lists = tags.iter().filter_map(|tag| self.tags.get(tag.as_str()));
                let first = lists.next()?;
                let mut acc: Option<RoaringBitmap> = None;
                for postings in lists {
                    *acc.get_or_insert_with(|| first.clone()) |= postings;
                }
                Some(acc.map_or(Cow::Borrowed(first), Cow::Owned))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn tag(name: &str) -> Query {
        Query::Tag(name.to_string())
    }

    fn sample() -> TagIndex {
        let mut ix = TagIndex::new();
        // Deliberately out of id order, as concurrent posts would arrive.
        ix.insert(10, &tags(&["a", "b"]));
        ix.insert(30, &tags(&["a"]));
        ix.insert(20, &tags(&["a", "b"]));
        ix.insert(40, &tags(&["b"]));
        ix.insert(25, &tags(&["a", "c"]));
        ix
    }

    #[test]
    fn tag_query_is_newest_first() {
        let ix = sample();
        assert_eq!(ix.query(&tag("a"), None, 10), vec![30, 25, 20, 10]);
        assert_eq!(ix.query(&tag("a"), None, 2), vec![30, 25]);
        assert!(ix.query(&tag("zzz"), None, 10).is_empty());
        assert!(ix.query(&tag("a"), None, 0).is_empty());
    }

    #[test]
    fn before_is_exclusive() {
        let ix = sample();
        assert_eq!(ix.query(&tag("a"), Some(25), 10), vec![20, 10]);
        assert_eq!(ix.query(&tag("a"), Some(26), 1), vec![25]);
        assert!(ix.query(&tag("a"), Some(10), 10).is_empty());
        assert!(ix.query(&tag("a"), Some(0), 10).is_empty());
    }

    #[test]
    fn all_intersects_and_any_unions() {
        let ix = sample();
        let all = Query::All(tags(&["a", "b"]));
        assert_eq!(ix.query(&all, None, 10), vec![20, 10]);
        let any = Query::Any(tags(&["c", "b", "missing"]));
        assert_eq!(ix.query(&any, None, 10), vec![40, 25, 20, 10]);
        assert!(ix
            .query(&Query::All(tags(&["a", "missing"])), None, 10)
            .is_empty());
        assert!(ix.query(&Query::All(vec![]), None, 10).is_empty());
        assert!(ix.query(&Query::Any(vec![]), None, 10).is_empty());
        assert_eq!(ix.query(&Query::All(tags(&["c"])), None, 10), vec![25]);
    }

    #[test]
    fn removed_tweets_never_appear() {
        let mut ix = sample();
        ix.remove(25);
        assert_eq!(ix.query(&tag("a"), None, 10), vec![30, 20, 10]);
        assert!(ix.query(&tag("c"), None, 10).is_empty());
    }

    #[test]
    fn pagination_visits_each_match_once() {
        let mut ix = TagIndex::new();
        // Nearly sorted with local swaps, plus one late, much older backfill.
        let ids: Vec<u64> = (0..200u64).map(|i| 1000 + i * 10 + (i % 3) * 17).collect();
        for &id in &ids {
            ix.insert(id, &tags(&["t"]));
        }
        ix.insert(5, &tags(&["t"]));
        let mut want: Vec<u64> = ids.clone();
        want.push(5);
        want.sort_unstable_by(|a, b| b.cmp(a));

        let mut got = Vec::new();
        let mut before = None;
        loop {
            let page = ix.query(&tag("t"), before, 7);
            let Some(&last) = page.last() else { break };
            got.extend_from_slice(&page);
            before = Some(last);
        }
        assert_eq!(got, want);
    }

    #[test]
    fn huge_limit_does_not_preallocate() {
        let ix = sample();
        assert_eq!(ix.query(&tag("b"), None, usize::MAX), vec![40, 20, 10]);
    }
}
