//! Hot-tweet cache: a get that hits, a get that misses, and an insert that evicts, against a
//! cache holding 100k tweets; and the baseline it saves: reading one tweet through the engine
//! with the cache on against the same read from RocksDB's block cache with it off.

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
        encoded: Default::default(),
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

fn tweet_reads(c: &mut Criterion) {
    let mut g = c.benchmark_group("tweet_read");
    for (name, bytes) in [("cache_on", 64usize << 20), ("cache_off_rocksdb", 0)] {
        let f = chirp_benches::fixture_config(|config| config.tweet_cache_bytes = bytes);
        let ids: Vec<u64> = f
            .node
            .user_timeline(
                f.ids[chirp_benches::TIMELINE_AUTHOR],
                chirp_engine::PageRequest {
                    after: None,
                    limit: 100,
                },
            )
            .expect("timeline")
            .items
            .iter()
            .map(|t| t.id)
            .collect();
        let mut i = 0;
        // Measures: `Node::tweet` of one of 100 recent tweets (hydration's unit of work).
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % ids.len();
                black_box(f.node.tweet(ids[i]).expect("tweet"))
            })
        });
    }
    g.finish();
}

criterion_group!(group, benches, tweet_reads);
criterion_main!(group);
