//! Differential test: random op sequences against a BTreeMap model.

use std::collections::{BTreeMap, BTreeSet};

use chirp_index::{Query, TagIndex};
use proptest::prelude::*;

const ALPHABET: [&str; 5] = ["a", "b", "c", "d", "e"];

#[derive(Debug, Clone)]
enum Op {
    Insert(u64, Vec<String>),
    Remove(u64),
    Query(Query, Option<u64>, usize),
}

/// Reference semantics: tag → live ids, plus the live set for idempotence.
#[derive(Default)]
struct Model {
    by_tag: BTreeMap<String, BTreeSet<u64>>,
    live: BTreeSet<u64>,
    high_water: Option<u64>,
}

impl Model {
    fn insert(&mut self, id: u64, tags: &[String]) {
        if !self.live.insert(id) {
            return;
        }
        self.high_water = self.high_water.max(Some(id));
        for tag in tags {
            self.by_tag.entry(tag.clone()).or_default().insert(id);
        }
    }

    fn remove(&mut self, id: u64) -> bool {
        for ids in self.by_tag.values_mut() {
            ids.remove(&id);
        }
        self.live.remove(&id)
    }

    fn matches(&self, q: &Query) -> BTreeSet<u64> {
        let get = |t: &String| self.by_tag.get(t).cloned().unwrap_or_default();
        match q {
            Query::Tag(t) => get(t),
            Query::All(ts) => match ts.split_first() {
                None => BTreeSet::new(),
                Some((first, rest)) => rest.iter().fold(get(first), |acc, t| {
                    acc.intersection(&get(t)).copied().collect()
                }),
            },
            Query::Any(ts) => ts.iter().flat_map(get).collect(),
        }
    }

    fn query(&self, q: &Query, before: Option<u64>, limit: usize) -> Vec<u64> {
        self.matches(q)
            .into_iter()
            .rev()
            .filter(|&id| before.is_none_or(|b| id < b))
            .take(limit)
            .collect()
    }
}

fn tag_list() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop::sample::select(&ALPHABET[..]).prop_map(String::from),
        0..4,
    )
}

fn query() -> impl Strategy<Value = Query> {
    prop_oneof![
        prop::sample::select(&ALPHABET[..]).prop_map(|t| Query::Tag(t.to_string())),
        tag_list().prop_map(Query::All),
        tag_list().prop_map(Query::Any),
    ]
}

/// Ids come from a small range so duplicates, re-inserts and out-of-order
/// arrivals are all frequent.
fn op(max_id: u64) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..max_id, tag_list()).prop_map(|(id, tags)| Op::Insert(id, tags)),
        2 => (0..max_id).prop_map(Op::Remove),
        3 => (query(), prop::option::of(0..max_id + 2), 0usize..8)
            .prop_map(|(q, before, limit)| Op::Query(q, before, limit)),
    ]
}

/// Nearly sorted ids: a rising clock with small random jitter either way.
fn nearly_sorted_inserts() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec((0u64..5, 0u64..6, tag_list()), 0..120).prop_map(|steps| {
        let mut clock = 100;
        steps
            .into_iter()
            .map(|(step, jitter, tags)| {
                clock += step;
                Op::Insert(clock + jitter, tags)
            })
            .collect()
    })
}

fn check_pagination(ix: &TagIndex, model: &Model, q: &Query, page: usize) {
    let mut got = Vec::new();
    let mut before = None;
    loop {
        let chunk = ix.query(q, before, page);
        let Some(&last) = chunk.last() else { break };
        got.extend_from_slice(&chunk);
        before = Some(last);
    }
    let want: Vec<u64> = model.matches(q).into_iter().rev().collect();
    assert_eq!(got, want, "paging {q:?} by {page}");
}

fn run(ops: &[Op], page: usize) {
    let mut ix = TagIndex::new();
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Insert(id, tags) => {
                ix.insert(*id, tags);
                model.insert(*id, tags);
            }
            Op::Remove(id) => assert_eq!(ix.remove(*id), model.remove(*id), "remove {id}"),
            Op::Query(q, before, limit) => assert_eq!(
                ix.query(q, *before, *limit),
                model.query(q, *before, *limit),
                "{q:?} before {before:?} limit {limit}"
            ),
        }
        assert_eq!(ix.len(), model.live.len());
        assert_eq!(ix.high_water(), model.high_water);
    }

    let mut bytes = Vec::new();
    ix.write_to(&mut bytes)
        .expect("writing to a Vec cannot fail");
    let reloaded = TagIndex::from_bytes(&bytes).expect("own output must load");
    assert_eq!(reloaded.len(), ix.len());
    for t in ALPHABET {
        let q = Query::Tag(t.to_string());
        check_pagination(&ix, &model, &q, page);
        check_pagination(&reloaded, &model, &q, page);
    }
    for q in [
        Query::All(vec!["a".into(), "b".into()]),
        Query::Any(vec!["c".into(), "d".into()]),
    ] {
        check_pagination(&ix, &model, &q, page);
        check_pagination(&reloaded, &model, &q, page);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_ops_match_model(ops in prop::collection::vec(op(60), 0..200), page in 1usize..6) {
        run(&ops, page);
    }

    #[test]
    fn nearly_sorted_then_random_ops_match_model(
        head in nearly_sorted_inserts(),
        tail in prop::collection::vec(op(200), 0..80),
        page in 1usize..6,
    ) {
        let ops: Vec<Op> = head.into_iter().chain(tail).collect();
        run(&ops, page);
    }
}
