//! Hashtag index hot paths: inserting a tweet, the first page of a tag with 1M tweets, and a
//! two-tag intersection page.

use chirp_index::{Query, TagIndex};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};

const BIG: u64 = 1_000_000;

/// An index of `BIG` tweets all tagged `hot`; every 3rd also `warm`, every 7th also `cold`.
fn big_index() -> TagIndex {
    let mut index = TagIndex::new();
    let (hot, warm, cold) = ("hot".to_string(), "warm".to_string(), "cold".to_string());
    for i in 0..BIG {
        let mut tags = vec![hot.clone()];
        if i % 3 == 0 {
            tags.push(warm.clone());
        }
        if i % 7 == 0 {
            tags.push(cold.clone());
        }
        // Time-ordered ids: shifted like real ids, so the index sees realistic values.
        index.insert((i + 1) << 22, &tags);
    }
    index
}

fn benches(c: &mut Criterion) {
    let mut index = big_index();
    let mut next = (BIG + 1) << 22;
    let tags = vec!["hot".to_string(), "fresh".to_string()];
    // Measures: one insert of a 2-tag tweet into an index already holding 1M tweets.
    c.bench_function("index/insert_into_1M", |b| {
        b.iter(|| {
            next += 1 << 22;
            black_box(index.insert(next, &tags))
        })
    });
    let index = big_index();
    let hot = Query::Tag("hot".into());
    // Measures: first page (20 newest) of a tag carried by 1M tweets.
    c.bench_function("index/first_page_1M_tag", |b| {
        b.iter(|| black_box(index.query(&hot, None, 20)))
    });
    // Measures: a page deep in the tag (cursor at the middle).
    let mid = Some((BIG / 2) << 22);
    c.bench_function("index/mid_page_1M_tag", |b| {
        b.iter(|| black_box(index.query(&hot, mid, 20)))
    });
    let both = Query::All(vec!["warm".into(), "cold".into()]);
    // Measures: first page of the intersection of two tags (333k and 143k tweets).
    c.bench_function("index/first_page_two_tag_and", |b| {
        b.iter(|| black_box(index.query(&both, None, 20)))
    });
    let either = Query::Any(vec!["warm".into(), "cold".into()]);
    // Measures: first page of the union of the same two tags.
    c.bench_function("index/first_page_two_tag_or", |b| {
        b.iter(|| black_box(index.query(&either, None, 20)))
    });
    // Measures: one save of the 1M-tweet index to a file (persistence cost).
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.tags");
    c.bench_function("index/save_1M", |b| {
        b.iter_batched(
            || (),
            |()| index.save(&path).expect("save"),
            BatchSize::PerIteration,
        )
    });
}

criterion_group! {
    name = group;
    config = Criterion::default().sample_size(20);
    targets = benches
}
criterion_main!(group);
