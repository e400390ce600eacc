//! Placement: users are minted on the shard that holds them, a node may hold only some
//! shards (a cluster node), and a shard held elsewhere is an error naming it, never a panic.

use std::collections::{BTreeMap, HashSet};

use chirp_engine::ids::{self, shard_of_handle, shard_of_user};
use chirp_engine::{Error, NewTweet, NewUser, Node, NodeConfig, PageRequest, TagQuery};

fn config(dir: &std::path::Path) -> NodeConfig {
    let mut config = NodeConfig::new(dir);
    config.sync_writes = false;
    config
}

fn user(handle: &str) -> NewUser {
    NewUser {
        handle: handle.to_string(),
        password: "placement password".into(),
        display_name: None,
        email: None,
    }
}

/// A handle whose claim lives on one of `shards` (of `count`).
fn handle_on(prefix: &str, shards: &[usize], count: usize, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .filter(|h| shards.contains(&shard_of_handle(&h.to_ascii_lowercase(), count)))
        .take(n)
        .collect()
}

#[test]
fn sign_ups_are_minted_on_the_shard_that_holds_them_and_spread_evenly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut minted = Vec::new();
    {
        let node = Node::open(config(dir.path())).expect("open");
        for i in 0..40 {
            minted.push(
                node.sign_up(user(&format!("spread{i}")))
                    .expect("sign up")
                    .id,
            );
        }
        node.close().expect("close");
    }
    // Reopened: the generators start above what each shard stores.
    let node = Node::open(config(dir.path())).expect("reopen");
    for i in 40..60 {
        minted.push(
            node.sign_up(user(&format!("spread{i}")))
                .expect("sign up")
                .id,
        );
    }
    let mut per_shard: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for &id in &minted {
        let s = shard_of_user(id, 4);
        assert_eq!(
            ids::shard_of_id(id),
            s,
            "user {id} carries its shard's bits"
        );
        per_shard.entry(s).or_default().push(id);
    }
    assert_eq!(minted.iter().collect::<HashSet<_>>().len(), minted.len());
    // In turn over the four shards: 15 each, each shard's ids increasing across the restart.
    assert_eq!(per_shard.len(), 4);
    for ids in per_shard.values() {
        assert_eq!(ids.len(), 15);
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    }
}

#[test]
fn a_cluster_node_holds_only_its_shards_and_names_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path());
    c.cluster = Some("test".into());
    c.hold = Some(vec![2, 0]);
    let node = Node::open(c).expect("open");
    assert_eq!(node.placement().local_ids(), vec![0, 2]);
    assert_eq!(node.shard_count(), 4);

    // Opened read-only: a cluster node's shards take writes once the map says so.
    let handles = handle_on("held", &[0, 2], 4, 6);
    assert!(matches!(
        node.sign_up(user(&handles[0])),
        Err(Error::NotPrimary(_))
    ));
    node.set_shard_primary(0, true).expect("primary of 0");
    node.set_shard_primary(2, true).expect("primary of 2");
    let mut authors = Vec::new();
    for h in &handles[1..] {
        let p = node.sign_up(user(h)).expect("sign up");
        assert!(
            [0, 2].contains(&shard_of_user(p.id, 4)),
            "user {} lands on a held shard",
            p.id
        );
        authors.push(p.id);
    }
    let tweet = node
        .post_tweet(
            authors[0],
            NewTweet {
                text: "held here #placed".into(),
                ..NewTweet::default()
            },
        )
        .expect("post");
    let found = node
        .search(
            TagQuery::Tag("placed".into()),
            PageRequest {
                after: None,
                limit: 10,
            },
        )
        .expect("search");
    assert_eq!(
        found.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![tweet.id]
    );

    // A user or a handle on shard 1 or 3 is somewhere else: said so, with the shard.
    let elsewhere = (1..)
        .find(|&u| shard_of_user(u, 4) == 1)
        .expect("a user on shard 1");
    assert!(matches!(node.profile(elsewhere), Err(Error::NotHere(1))));
    let far_handle = &handle_on("far", &[3], 4, 1)[0];
    assert!(matches!(
        node.sign_up(user(far_handle)),
        Err(Error::NotHere(3))
    ));

    // Assigned shard 1 later: opened empty, read-only until made primary.
    node.hold_shard(1).expect("hold 1");
    assert_eq!(node.placement().local_ids(), vec![0, 1, 2]);
    assert!(matches!(node.profile(elsewhere), Err(Error::NotFound(_))));
    assert!(!node.is_primary_of(1));
    node.close().expect("close");

    // Reopened with the shards it held: everything is still there.
    let mut c = config(dir.path());
    c.cluster = Some("test".into());
    c.hold = Some(vec![0, 1, 2]);
    let node = Node::open(c).expect("reopen");
    assert_eq!(
        node.tweet(tweet.id).expect("tweet").text,
        "held here #placed"
    );
}

#[test]
fn a_data_dir_opens_only_as_what_it_was_made_for() {
    let standalone = tempfile::tempdir().expect("tempdir");
    Node::open(config(standalone.path()))
        .expect("make")
        .close()
        .expect("close");
    let mut c = config(standalone.path());
    c.cluster = Some("test".into());
    assert!(matches!(
        Node::open(c),
        Err(Error::Invalid { field: "data", .. })
    ));

    let clustered = tempfile::tempdir().expect("tempdir");
    let mut c = config(clustered.path());
    c.cluster = Some("test".into());
    Node::open(c).expect("make").close().expect("close");
    assert!(matches!(
        Node::open(config(clustered.path())),
        Err(Error::Invalid { field: "data", .. })
    ));
    let mut other = config(clustered.path());
    other.cluster = Some("other".into());
    assert!(matches!(
        Node::open(other),
        Err(Error::Invalid { field: "data", .. })
    ));
    let mut resized = config(clustered.path());
    resized.cluster = Some("test".into());
    resized.shards = 8;
    assert!(matches!(
        Node::open(resized),
        Err(Error::Invalid {
            field: "shards",
            ..
        })
    ));
    let mut beyond = config(clustered.path());
    beyond.cluster = Some("test".into());
    beyond.hold = Some(vec![4]);
    assert!(matches!(
        Node::open(beyond),
        Err(Error::Invalid { field: "shard", .. })
    ));
}

/// A copy that was a replica stored ids another primary minted, perhaps on a clock ahead of
/// this one's: once it is the primary it mints above them, never a repeat.
#[test]
fn a_promoted_copy_mints_above_every_id_it_received() {
    use chirp_engine::batch::{encode_entry, Batch};
    use chirp_engine::doc::{self, TweetDoc};
    use chirp_engine::keys::{self, CF_TWEETS};

    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path());
    c.cluster = Some("test".into());
    c.hold = Some(vec![0]);
    let node = Node::open(c).expect("open");

    // A tweet minted an hour ahead of this node's clock arrives as a replicated entry.
    let ahead_ms = ids::now_unix_ms() + 3_600_000;
    let far = ids::IdGen::new(0, ids::min_id_at(ahead_ms)).next_id();
    assert_eq!(ids::shard_of_id(far), 0);
    let tweet = TweetDoc {
        id: far,
        author_id: 1,
        author_handle: "ahead".into(),
        text: "from a clock ahead".into(),
        hashtags: vec![],
        media: vec![],
        created_at_ms: ahead_ms,
        extra: Default::default(),
        rest: Default::default(),
        encoded: Default::default(),
    };
    let mut batch = Batch::new();
    batch.put(
        CF_TWEETS,
        keys::id_key(far),
        doc::encode(&tweet).expect("encode"),
    );
    let epoch = node.log_position(0).expect("position").epoch;
    node.apply_replicated(0, &encode_entry(epoch, 1, batch.ops()))
        .expect("apply");

    // Promoted by the map: what it mints now is above the tweet it received.
    node.set_shard_primary(0, true).expect("primary of 0");
    let handle = &handle_on("floor", &[0], 4, 1)[0];
    let author = node.sign_up(user(handle)).expect("sign up");
    let mine = node
        .post_tweet(
            author.id,
            NewTweet {
                text: "after the promotion".into(),
                ..NewTweet::default()
            },
        )
        .expect("post");
    assert!(mine.id > far, "minted {} at or below {far}", mine.id);
}
