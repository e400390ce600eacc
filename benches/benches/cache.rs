//! Hot-tweet cache: a get that hits, a get that misses, and an insert that evicts, against a
//! cache holding 100k tweets.

use std::sync::Arc;

use chirp_engine::cache::TweetCache;
use chirp_engine::doc::TweetDoc;
use criterion::{black_box, criterion_group, criterion_main, Criterion};

fn tweet(id: u64) -> Arc<TweetDoc> {
    Arc::new(TweetDoc {
        id,
        author_id: id % 1000,
        author_handle: format!("user{}", id % 1000),
        text: "A typical tweet of some seventy characters, with a #hashtag or two #rust".into(),
        hashtags: vec!["hashtag".into(), "rust".into()],
        media: vec![],
        created_at_ms: 0,
        extra: Default::default(),
        rest: Default::default(),
    })
}

fn benches(c: &mut Criterion) {
    const N: u64 = 100_000;
    let cache = TweetCache::new(64 << 20);
    for id in 0..N {
        cache.insert_new(tweet(id));
    }
    let mut i = 0u64;
    // Measures: a lookup of a cached tweet (hash, lock, LRU bump, Arc clone).
    c.bench_function("cache/get_hit", |b| {
        b.iter(|| {
            i = (i + 7919) % N;
            black_box(cache.get(i).is_ok())
        })
    });
    // Measures: a lookup of a tweet that is not cached (the cost before going to RocksDB).
    c.bench_function("cache/get_miss", |b| {
        b.iter(|| {
            i += 1;
            black_box(cache.get(N + i).is_err())
        })
    });
    let small = TweetCache::new(4 << 20);
    let mut next = 0u64;
    // Measures: inserting into a full 4 MiB cache, so every insert also evicts.
    c.bench_function("cache/insert_evicting", |b| {
        b.iter(|| {
            next += 1;
            small.insert_new(tweet(next));
        })
    });
}

criterion_group!(group, benches);
criterion_main!(group);
