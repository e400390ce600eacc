//! Fixtures for the criterion benchmarks in `benches/`: a node on a temp dir, seeded through
//! the engine's bulk import with the accounts each benchmark needs.
//!
//! Nodes run in the relaxed mode (`sync_writes = false`: acknowledged before fsync), so the
//! figures measure Chirp's own work rather than this machine's fsync latency.

use chirp_engine::{ImportSet, ImportTweet, ImportUser, Node, NodeConfig};
use tempfile::TempDir;

/// The author followed by exactly 100 users.
pub const AUTHOR_100: usize = 0;
/// The author followed by exactly 1,000 users.
pub const AUTHOR_1000: usize = 1;
/// The author with [`TIMELINE_TWEETS`] tweets.
pub const TIMELINE_AUTHOR: usize = 2;
/// Tweets of [`TIMELINE_AUTHOR`].
pub const TIMELINE_TWEETS: usize = 200;
/// Authors the readers follow: users `AUTHORS_FROM..AUTHORS_FROM + AUTHORS`.
pub const AUTHORS_FROM: usize = 10;
/// How many such authors.
pub const AUTHORS: usize = 1000;
/// Tweets per such author.
pub const TWEETS_PER_AUTHOR: usize = 5;
/// Readers: users `READERS_FROM..READERS_FROM + READERS`, each following 100 authors.
pub const READERS_FROM: usize = 2000;
/// How many readers.
pub const READERS: usize = 1000;
/// All users (the rest, below `READERS_FROM`, are the pool `follow` draws pairs from).
pub const USERS: usize = READERS_FROM + READERS;

/// A seeded node; dropping it removes its directory.
pub struct Fixture {
    /// The node (declared first: it closes before the directory goes).
    pub node: Node,
    /// User ids by index.
    pub ids: Vec<u64>,
    _dir: TempDir,
}

/// Opens a node with `block_cache_bytes` of block cache and imports the bench network.
pub fn fixture(block_cache_bytes: usize) -> Fixture {
    fixture_with(block_cache_bytes, false)
}

/// A seeded node that fsyncs before acknowledging (`sync_writes`) or not.
pub fn fixture_with(block_cache_bytes: usize, sync_writes: bool) -> Fixture {
    fixture_config(|config| {
        config.sync_writes = sync_writes;
        config.block_cache_bytes = block_cache_bytes;
    })
}

/// A seeded node in the relaxed mode with any other settings changed by `tune`.
pub fn fixture_config(tune: impl FnOnce(&mut NodeConfig)) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = NodeConfig::new(dir.path());
    config.sync_writes = false;
    tune(&mut config);
    let node = Node::open(config).expect("open node");
    let users = (0..USERS)
        .map(|i| ImportUser {
            handle: format!("b{i}"),
            display_name: format!("Bench {i}"),
            password_phc: "unused-in-benchmarks".into(),
        })
        .collect();
    let mut follows = Vec::new();
    for f in 1..=1000u32 {
        if f <= 100 {
            follows.push((f + 2000, AUTHOR_100 as u32));
        }
        follows.push((f + 1000, AUTHOR_1000 as u32));
    }
    let mut tweets = Vec::new();
    for r in 0..READERS {
        for k in 0..100 {
            // A fixed spread: reader r follows authors r*7 + k*10 (mod AUTHORS), all distinct.
            let a = AUTHORS_FROM + (r * 7 + k * 10) % AUTHORS;
            follows.push(((READERS_FROM + r) as u32, a as u32));
        }
    }
    for a in 0..AUTHORS {
        for k in 0..TWEETS_PER_AUTHOR {
            tweets.push(ImportTweet {
                author: (AUTHORS_FROM + a) as u32,
                text: format!("bench tweet {k} of author {a} #bench #tag{}", a % 50),
            });
        }
    }
    for k in 0..TIMELINE_TWEETS {
        tweets.push(ImportTweet {
            author: TIMELINE_AUTHOR as u32,
            text: format!("timeline tweet {k} #timeline"),
        });
    }
    let set = ImportSet {
        users,
        follows,
        tweets,
    };
    let report = node.import(set, &()).expect("import");
    node.flush().expect("flush");
    Fixture {
        node,
        ids: report.user_ids,
        _dir: dir,
    }
}
