//! Opening and replacing shards never loses or invents data: a missing shard of an existing
//! data dir is refused (not recreated empty), and a checkpoint that does not belong to a shard
//! is refused before the shard's own files are touched.

use chirp_engine::tweets::NewTweet;
use chirp_engine::{NewUser, Node, NodeConfig, PageRequest};

fn open(dir: &std::path::Path, shards: usize) -> chirp_engine::Result<Node> {
    let mut config = NodeConfig::new(dir);
    config.shards = shards;
    config.block_cache_bytes = 8 << 20;
    Node::open(config)
}

fn post(node: &Node, author: u64, text: &str) -> u64 {
    let t = NewTweet {
        text: text.into(),
        media: vec![],
        extra: Default::default(),
    };
    node.post_tweet(author, t).expect("post").id
}

fn user(node: &Node, handle: &str) -> u64 {
    node.sign_up(NewUser {
        handle: handle.into(),
        password: "a long enough password".into(),
        display_name: None,
        email: None,
    })
    .expect("sign up")
    .id
}

#[test]
fn a_missing_shard_is_refused_not_recreated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = open(dir.path(), 2).expect("open");
    let author = user(&node, "someone");
    post(&node, author, "hello");
    node.close().expect("close");
    std::fs::remove_dir_all(dir.path().join("shards/001")).expect("remove shard");
    let reopened = open(dir.path(), 2);
    assert!(
        matches!(reopened, Err(chirp_engine::Error::Corrupt(ref m)) if m.contains("001")),
        "{:?}",
        reopened.err()
    );
    assert!(!dir.path().join("shards/001").exists(), "nothing recreated");
}

#[test]
fn a_checkpoint_of_another_shard_is_refused_and_the_shard_keeps_its_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = open(dir.path(), 2).expect("open");
    // Users land on either shard; post from several so both hold tweets.
    let authors: Vec<u64> = (0..6).map(|i| user(&node, &format!("user{i}"))).collect();
    let tweets: Vec<u64> = authors
        .iter()
        .map(|a| post(&node, *a, "kept across a refused swap"))
        .collect();
    let staged = dir.path().join("staged");
    node.checkpoint_shard(1, &staged)
        .expect("checkpoint of shard 1");
    let refused = node.install_checkpoint(0, &staged);
    assert!(refused.is_err(), "shard 0 took shard 1's checkpoint");
    for id in tweets {
        node.tweet(id).expect("every tweet still readable");
    }
    for a in &authors {
        let page = node
            .user_timeline(*a, PageRequest::default())
            .expect("timeline");
        assert_eq!(page.items.len(), 1);
    }
    post(&node, authors[0], "shard still writable");
}
