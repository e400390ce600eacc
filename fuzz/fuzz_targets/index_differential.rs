//! cargo-fuzz target: differential check of `TagIndex` against a BTreeMap model.
//!
//! Run with `cargo +nightly fuzz run index_differential` from `fuzz/`. It also feeds the
//! final encoding through `from_bytes` with one byte flipped, which must error, never panic.

#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::Arbitrary;
use chirp_index::{Error, Query, TagIndex};
use libfuzzer_sys::fuzz_target;

// A tiny alphabet and id space make collisions, re-inserts and
// out-of-order arrivals common instead of vanishingly rare.
const ALPHABET: [&str; 4] = ["a", "b", "c", "d"];

#[derive(Debug, Arbitrary)]
enum Kind {
    Tag,
    All,
    Any,
}

#[derive(Debug, Arbitrary)]
enum Op {
    Insert { id: u8, tags: u8 },
    Remove { id: u8 },
    Query { kind: Kind, tags: u8, before: Option<u8>, limit: u8 },
}

#[derive(Debug, Arbitrary)]
struct Input {
    ops: Vec<Op>,
    flip_at: u16,
    flip_mask: u8,
}

/// Bit i of `mask` selects ALPHABET[i].
fn tag_set(mask: u8) -> Vec<String> {
    ALPHABET
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, t)| t.to_string())
        .collect()
}

fn make_query(kind: &Kind, mask: u8) -> Query {
    match kind {
        Kind::Tag => Query::Tag(ALPHABET[usize::from(mask) % ALPHABET.len()].to_string()),
        Kind::All => Query::All(tag_set(mask)),
        Kind::Any => Query::Any(tag_set(mask)),
    }
}

#[derive(Default)]
struct Model {
    by_tag: BTreeMap<String, BTreeSet<u64>>,
    live: BTreeSet<u64>,
}

impl Model {
    fn matches(&self, q: &Query) -> BTreeSet<u64> {
        let get = |t: &String| self.by_tag.get(t).cloned().unwrap_or_default();
        match q {
            Query::Tag(t) => get(t),
            Query::All(ts) => match ts.split_first() {
                None => BTreeSet::new(),
                Some((first, rest)) => rest
                    .iter()
                    .fold(get(first), |acc, t| acc.intersection(&get(t)).copied().collect()),
            },
            Query::Any(ts) => ts.iter().flat_map(get).collect(),
        }
    }
}

fuzz_target!(|input: Input| {
    let mut ix = TagIndex::new();
    let mut model = Model::default();
    for op in &input.ops {
        match op {
            Op::Insert { id, tags } => {
                let (id, tags) = (u64::from(*id), tag_set(*tags));
                ix.insert(id, &tags);
                if model.live.insert(id) {
                    for t in tags {
                        model.by_tag.entry(t).or_default().insert(id);
                    }
                }
            }
            Op::Remove { id } => {
                let id = u64::from(*id);
                for ids in model.by_tag.values_mut() {
                    ids.remove(&id);
                }
                assert_eq!(ix.remove(id), model.live.remove(&id));
            }
            Op::Query { kind, tags, before, limit } => {
                let q = make_query(kind, *tags);
                let before = before.map(u64::from);
                let limit = usize::from(*limit % 16);
                let want: Vec<u64> = model
                    .matches(&q)
                    .into_iter()
                    .rev()
                    .filter(|&id| before.is_none_or(|b| id < b))
                    .take(limit)
                    .collect();
                assert_eq!(ix.query(&q, before, limit), want, "{q:?} {before:?} {limit}");
            }
        }
        assert_eq!(ix.len(), model.live.len());
    }

    let mut bytes = Vec::new();
    ix.write_to(&mut bytes).expect("encoding into a Vec cannot fail");
    let back = TagIndex::from_bytes(&bytes).expect("own encoding must decode");
    for t in ALPHABET {
        let q = Query::Tag(t.to_string());
        assert_eq!(back.query(&q, None, usize::MAX), ix.query(&q, None, usize::MAX));
    }

    if input.flip_mask != 0 {
        let pos = usize::from(input.flip_at) % bytes.len();
        bytes[pos] ^= input.flip_mask;
        assert!(matches!(TagIndex::from_bytes(&bytes), Err(Error::Corrupt(_))));
    }
});
