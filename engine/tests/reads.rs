//! Request-path reads inside `cache_only` never wait for the disk: a read that misses the
//! block cache fails with `WouldBlock` (the server then redoes it on the blocking pool), and the
//! same read succeeds from the cache once the data was read.

use chirp_engine::tweets::NewTweet;
use chirp_engine::{cache_only, Error, NewUser, Node, NodeConfig, PageRequest};

fn open(dir: &std::path::Path) -> Node {
    let mut config = NodeConfig::new(dir);
    config.shards = 1;
    config.block_cache_bytes = 8 << 20;
    // Without the hot-tweet cache every tweet read goes to RocksDB.
    config.tweet_cache_bytes = 0;
    Node::open(config).expect("open")
}

#[test]
fn cache_only_reads_never_touch_the_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = open(dir.path());
    let author = node
        .sign_up(NewUser {
            handle: "reader".into(),
            password: "a long enough password".into(),
            display_name: None,
            email: None,
        })
        .expect("sign up")
        .id;
    for i in 0..30 {
        let t = NewTweet {
            text: format!("tweet {i}"),
            media: vec![],
            extra: Default::default(),
        };
        node.post_tweet(author, t).expect("post");
    }
    node.close().expect("close flushes to SST files");

    let node = open(dir.path());
    let page = PageRequest::default();
    let cold = cache_only(|| node.user_timeline(author, page));
    assert!(matches!(cold, Err(Error::WouldBlock)), "{cold:?}");
    let read = node.user_timeline(author, page).expect("a blocking read");
    assert_eq!(read.items.len(), 20);
    let warm = cache_only(|| node.user_timeline(author, page)).expect("served from the cache");
    let ids = |p: &chirp_engine::Page<std::sync::Arc<chirp_engine::doc::TweetDoc>>| {
        p.items.iter().map(|t| t.id).collect::<Vec<_>>()
    };
    assert_eq!(ids(&warm), ids(&read));
}
