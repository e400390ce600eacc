//! Doc-number → tweet-id table plus the two monotone "record" lists that
//! let queries binary-search even when ids arrived slightly out of order.
//!
//! Doc numbers follow insertion order, but tweet ids only *nearly* do
//! (concurrent posts land a few ms apart in either order, and a backfill can
//! insert much older ids late). Rather than a `sorted` flag that would switch
//! to full scans after the first straggler, we keep two lists that stay
//! exact under any insertion order and cost amortised O(1) per insert:
//!
//! * `maxima`: docs whose id is larger than every earlier doc's id (the
//!   running-maximum records). Strictly increasing in doc *and* id, so the
//!   largest id among docs `[0, d)` is the id of the last record below `d`.
//! * `minima`: docs whose id is smaller than every later doc's id (a
//!   monotonic stack). Strictly increasing in doc *and* id, so the last doc
//!   holding an id below some bound is the last stack entry below that bound.
//!
//! When ids do arrive sorted both lists equal `0..len`; the cost is 8 extra
//! bytes per doc, which buys exact answers with no re-sorting.

/// Append-only doc table with the bookkeeping needed for ordered queries.
#[derive(Debug, Default, Clone)]
pub(crate) struct DocOrder {
    ids: Vec<u64>,
    maxima: Vec<u32>,
    minima: Vec<u32>,
}

impl DocOrder {
    /// Number of docs ever assigned, including removed ones.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// All tweet ids in doc order.
    pub(crate) fn ids(&self) -> &[u64] {
        &self.ids
    }

    /// Tweet id stored for `doc`, if that doc exists.
    pub(crate) fn id(&self, doc: u32) -> Option<u64> {
        self.ids.get(doc as usize).copied()
    }

    /// Record `id` under the next doc number, or `None` if u32 is exhausted.
    pub(crate) fn push(&mut self, id: u64) -> Option<u32> {
        let doc = u32::try_from(self.ids.len()).ok()?;
        if self.max_before(self.ids.len()).is_none_or(|max| id > max) {
            self.maxima.push(doc);
        }
        // Popping entries with id >= the newcomer keeps the stack strictly
        // increasing; each doc is popped at most once, hence amortised O(1).
        while let Some(&top) = self.minima.last() {
            if self.ids[top as usize] >= id {
                self.minima.pop();
            } else {
                break;
            }
        }
        self.minima.push(doc);
        self.ids.push(id);
        Some(doc)
    }

    /// Largest tweet id among docs `[0, end)`, or `None` when that range is empty.
    pub(crate) fn max_before(&self, end: usize) -> Option<u64> {
        let k = self.maxima.partition_point(|&d| (d as usize) < end);
        let record = *self.maxima.get(k.checked_sub(1)?)?;
        self.id(record)
    }

    /// Smallest `end` such that every doc at or after `end` has id >= `bound`.
    pub(crate) fn end_below(&self, bound: u64) -> usize {
        // The last doc with id < bound is smaller than every later id, so it
        // is on the minima stack, and it is the last stack entry below bound.
        let k = self
            .minima
            .partition_point(|&d| self.ids[d as usize] < bound);
        match k.checked_sub(1).and_then(|i| self.minima.get(i)) {
            Some(&doc) => doc as usize + 1,
            None => 0,
        }
    }

    /// Approximate heap bytes held by this table.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.ids.capacity() * 8 + (self.maxima.capacity() + self.minima.capacity()) * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(ids: &[u64]) -> DocOrder {
        let mut o = DocOrder::default();
        for &id in ids {
            o.push(id);
        }
        o
    }

    #[test]
    fn bounds_match_brute_force() {
        let ids = [10, 30, 20, 25, 5, 40, 35, 35, 1, 50];
        let o = build(&ids);
        for end in 0..=ids.len() {
            assert_eq!(o.max_before(end), ids[..end].iter().copied().max());
        }
        for bound in 0..60 {
            let want = ids.iter().rposition(|&id| id < bound).map_or(0, |p| p + 1);
            assert_eq!(o.end_below(bound), want, "bound {bound}");
        }
    }

    #[test]
    fn sorted_input_keeps_every_doc_as_a_record() {
        let o = build(&[1, 2, 3, 4]);
        assert_eq!(o.maxima, vec![0, 1, 2, 3]);
        assert_eq!(o.minima, vec![0, 1, 2, 3]);
        assert_eq!(o.end_below(3), 2);
    }

    #[test]
    fn reverse_input_collapses_the_stack() {
        let o = build(&[4, 3, 2, 1]);
        assert_eq!(o.maxima, vec![0]);
        assert_eq!(o.minima, vec![3]);
        assert_eq!(o.end_below(4), 4);
        assert_eq!(o.end_below(1), 0);
    }
}
