//! Criterion benchmarks of Chirp's hot path, on the engine API over a temp dir in the relaxed
//! (no-fsync) mode. Each states what it measures; `cargo bench -p chirp-benches` runs them.

use std::time::{Duration, Instant};

use chirp_benches::{
    fixture, fixture_config, fixture_with, AUTHORS, AUTHORS_FROM, AUTHOR_100, AUTHOR_1000, READERS,
    READERS_FROM, TIMELINE_AUTHOR,
};
use chirp_engine::{NewTweet, PageRequest};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn page20() -> PageRequest {
    PageRequest {
        after: None,
        limit: 20,
    }
}

/// Post a tweet and wait until the fan-out has written every follower's home row.
fn post_fanout(c: &mut Criterion) {
    let f = fixture(64 << 20);
    let mut g = c.benchmark_group("post_fanout");
    for (author, followers) in [(AUTHOR_100, 100u64), (AUTHOR_1000, 1000)] {
        g.throughput(Throughput::Elements(followers));
        g.bench_with_input(BenchmarkId::from_parameter(followers), &author, |b, &a| {
            let id = f.ids[a];
            b.iter(|| {
                let tweet = NewTweet {
                    text: "benchmark post #bench".into(),
                    ..NewTweet::default()
                };
                f.node.post_tweet(id, tweet).expect("post");
                assert!(f.node.wait_fanout_idle(Duration::from_secs(30)));
            });
        });
    }
    g.finish();
}

/// A burst of 100 posts (4 threads x 25) by the author with 1,000 followers, with fsync on,
/// timed until every follower's home row is written: fan-out throughput under load, in home
/// rows per second.
fn fanout_burst(c: &mut Criterion) {
    let f = fixture_with(64 << 20, true);
    let mut g = c.benchmark_group("fanout_burst_synced");
    g.sample_size(10);
    g.throughput(Throughput::Elements(100 * 1000));
    let author = f.ids[AUTHOR_1000];
    g.bench_function("100_posts_x_1000_followers", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        for _ in 0..25 {
                            let tweet = NewTweet {
                                text: "burst #bench".into(),
                                ..NewTweet::default()
                            };
                            f.node.post_tweet(author, tweet).expect("post");
                        }
                    });
                }
            });
            assert!(f.node.wait_fanout_idle(Duration::from_secs(120)));
        });
    });
    g.finish();
}

/// First home-feed page of 20 hydrated tweets of a reader following 100 authors, merged from
/// storage (the home-page cache off). `hot`: one reader, everything in the block cache;
/// `cold`: 1,000 readers in turn over a 1 MiB block cache, so the rows and tweets come from
/// SST files (in the OS page cache). `cached`: the 1,000 readers in turn with the home-page
/// cache on (its default size), so each page is served as cached after the first round.
fn home_feed(c: &mut Criterion) {
    let mut g = c.benchmark_group("home_feed_page20");
    let uncached = |block_cache: usize| {
        fixture_config(|config| {
            config.block_cache_bytes = block_cache;
            config.home_cache_entries = 0;
        })
    };
    let hot = uncached(64 << 20);
    let reader = hot.ids[READERS_FROM];
    g.bench_function("hot", |b| {
        b.iter(|| {
            let page = hot.node.home_feed(reader, page20()).expect("feed");
            assert_eq!(page.items.len(), 20);
        });
    });
    drop(hot);
    for (name, f) in [("cold", uncached(1 << 20)), ("cached", fixture(64 << 20))] {
        let mut next = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                next = (next + 1) % READERS;
                let page = f.node.home_feed(f.ids[READERS_FROM + next], page20());
                assert_eq!(page.expect("feed").items.len(), 20);
            });
        });
    }
    g.finish();
}

/// First page of 20 tweets of one user's own timeline (200 tweets), block cache hot.
fn user_timeline(c: &mut Criterion) {
    let f = fixture(64 << 20);
    let author = f.ids[TIMELINE_AUTHOR];
    c.bench_function("user_timeline_page20", |b| {
        b.iter(|| {
            let page = f.node.user_timeline(author, page20()).expect("timeline");
            assert_eq!(page.items.len(), 20);
        });
    });
}

/// Follow: both sides of a new edge with their counters, and the back-fill of the followee's
/// 5 tweets into the follower's feed (a fresh pair every time).
fn follow(c: &mut Criterion) {
    let f = fixture(64 << 20);
    // Followers 1010..2000 follow only AUTHOR_1000 and are no authors, so every pair is new,
    // and each author has tweets to back-fill.
    let mut pairs =
        (1010..2000).flat_map(|a| (AUTHORS_FROM..AUTHORS_FROM + AUTHORS).map(move |t| (a, t)));
    c.bench_function("follow", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                let (a, t) = pairs.next().expect("enough fresh pairs");
                let (a, t) = (f.ids[a], f.ids[t]);
                f.node.follow(a, a, t).expect("follow");
            }
            started.elapsed()
        });
    });
}

fn config() -> Criterion {
    // Few, short samples: these run on a shared 2-core machine; the spread is reported.
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
}

criterion_group! {
    name = benches;
    config = config();
    targets = post_fanout, fanout_burst, home_feed, user_timeline, follow
}
criterion_main!(benches);
