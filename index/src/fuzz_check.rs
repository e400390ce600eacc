//! The differential check behind the `index_differential` fuzz target (`fuzz/`), kept here
//! so the target and the corpus replay of the default tests (`tests/fuzz_corpus.rs`) run one
//! copy: the operations the bytes spell are applied to a [`TagIndex`] and to a
//! `BTreeMap<String, BTreeSet<u64>>` model, and every answer must agree.

use std::collections::{BTreeMap, BTreeSet};

use crate::{Error, Query, TagIndex};

// A tiny alphabet and id space make collisions, re-inserts and out-of-order arrivals common
// instead of vanishingly rare.
const ALPHABET: [&str; 4] = ["a", "b", "c", "d"];

/// Bit i of `mask` selects `ALPHABET[i]`.
fn tag_set(mask: u8) -> Vec<String> {
    ALPHABET
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, t)| t.to_string())
        .collect()
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
                Some((first, rest)) => rest.iter().fold(get(first), |acc, t| {
                    acc.intersection(&get(t)).copied().collect()
                }),
            },
            Query::Any(ts) => ts.iter().flat_map(get).collect(),
        }
    }
}

/// Runs the bytes as operations (`flip position: u16, flip mask: u8`, then per operation a
/// selector byte and its arguments) on the index and the model; panics where they disagree,
/// where the index's own encoding does not decode, or where a damaged encoding is accepted.
pub fn differential(data: &[u8]) {
    let mut bytes = data.iter().copied();
    let mut next = || bytes.next().unwrap_or(0);
    let flip_at = u16::from_be_bytes([next(), next()]);
    let flip_mask = next();
    let mut ix = TagIndex::new();
    let mut model = Model::default();
    let mut ops = data.get(3..).unwrap_or_default().iter().copied();
    while let Some(op) = ops.next() {
        let mut arg = || ops.next().unwrap_or(0);
        match op % 3 {
            0 => {
                let (id, tags) = (u64::from(arg()), tag_set(arg()));
                ix.insert(id, &tags);
                if model.live.insert(id) {
                    for t in tags {
                        model.by_tag.entry(t).or_default().insert(id);
                    }
                }
            }
            1 => {
                let id = u64::from(arg());
                for ids in model.by_tag.values_mut() {
                    ids.remove(&id);
                }
                assert_eq!(ix.remove(id), model.live.remove(&id));
            }
            _ => {
                let mask = arg();
                let q = match op / 3 % 3 {
                    0 => Query::Tag(ALPHABET[usize::from(mask) % ALPHABET.len()].to_string()),
                    1 => Query::All(tag_set(mask)),
                    _ => Query::Any(tag_set(mask)),
                };
                let before = match arg() {
                    0 => None,
                    b => Some(u64::from(b - 1)),
                };
                let limit = usize::from(arg() % 16);
                let want: Vec<u64> = model
                    .matches(&q)
                    .into_iter()
                    .rev()
                    .filter(|&id| before.is_none_or(|b| id < b))
                    .take(limit)
                    .collect();
                assert_eq!(
                    ix.query(&q, before, limit),
                    want,
                    "{q:?} {before:?} {limit}"
                );
            }
        }
        assert_eq!(ix.len(), model.live.len());
    }

    let mut encoded = Vec::new();
    ix.write_to(&mut encoded)
        .expect("encoding into a Vec cannot fail");
    let back = TagIndex::from_bytes(&encoded).expect("own encoding must decode");
    for t in ALPHABET {
        let q = Query::Tag(t.to_string());
        assert_eq!(
            back.query(&q, None, usize::MAX),
            ix.query(&q, None, usize::MAX)
        );
    }
    if flip_mask != 0 {
        let pos = usize::from(flip_at) % encoded.len();
        encoded[pos] ^= flip_mask;
        assert!(matches!(
            TagIndex::from_bytes(&encoded),
            Err(Error::Corrupt(_))
        ));
    }
}
