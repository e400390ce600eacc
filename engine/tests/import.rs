//! The bulk import writes what the domain layer would: users can log in, both sides of every
//! edge and the counters agree, feeds hold followees' tweets, celebrities merge at read time.

use chirp_engine::{ImportSet, ImportTweet, ImportUser, Node, NodeConfig, PageRequest, TagQuery};

fn open(dir: &std::path::Path) -> Node {
    let mut config = NodeConfig::new(dir);
    config.sync_writes = false;
    config.celebrity_threshold = 3;
    Node::open(config).expect("open")
}

fn set(phc: &str) -> ImportSet {
    let users = (0..6)
        .map(|i| ImportUser {
            handle: format!("Imp{i}"),
            display_name: format!("Imported {i}"),
            password_phc: phc.to_string(),
        })
        .collect();
    // 0 is followed by 1..=4 (a celebrity at threshold 3); 1 follows 2; 5 follows nobody.
    let mut follows = vec![(1, 0), (2, 0), (3, 0), (4, 0), (1, 2), (1, 2)];
    follows.reverse();
    let tweets = vec![
        ImportTweet {
            author: 2,
            text: "first from two #bulk".into(),
        },
        ImportTweet {
            author: 0,
            text: "celebrity speaking #Bulk".into(),
        },
        ImportTweet {
            author: 2,
            text: "second from two".into(),
        },
    ];
    ImportSet {
        users,
        follows,
        tweets,
    }
}

#[test]
fn imported_users_behave_like_signed_up_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let phc = chirp_engine::accounts::hash_password("import password").expect("hash");
    let node = open(dir.path());
    let report = node.import(set(&phc), &()).expect("import");
    let ids = report.user_ids.clone();
    assert_eq!(ids.len(), 6);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));

    let session = node.log_in("imp1", "import password").expect("log in");
    assert_eq!(session.user_id, ids[1]);
    assert!(node.log_in("imp1", "wrong password").is_err());
    assert_eq!(node.resolve_user("@IMP5").expect("handle"), ids[5]);

    let celeb = node.profile(ids[0]).expect("profile");
    assert_eq!(
        (
            celeb.followers_count,
            celeb.following_count,
            celeb.tweet_count
        ),
        (4, 0, 1)
    );
    let one = node.profile(ids[1]).expect("profile");
    assert_eq!(
        (one.followers_count, one.following_count),
        (0, 2),
        "duplicate edge dropped"
    );
    let followers = node
        .followers(ids[0], PageRequest::default())
        .expect("list");
    assert_eq!(
        followers.items.iter().map(|p| p.id).collect::<Vec<_>>(),
        ids[1..5].to_vec()
    );
    assert!(node.is_following(ids[1], ids[2]).expect("edge"));

    // 1's feed: two's tweets (materialized) and the celebrity's (merged), newest first.
    let feed = node
        .home_feed(ids[1], PageRequest::default())
        .expect("feed");
    let texts: Vec<&str> = feed.items.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert!(feed.items.windows(2).all(|w| w[0].id > w[1].id));
    let timeline = node
        .user_timeline(ids[2], PageRequest::default())
        .expect("timeline");
    assert_eq!(timeline.items[0].text, "second from two");
    assert_eq!(timeline.items[1].hashtags, vec!["bulk".to_string()]);
    let found = node
        .search(TagQuery::Tag("#BULK".into()), PageRequest::default())
        .expect("search");
    assert_eq!(found.items.len(), 2, "both #bulk tweets are indexed");

    // Imported rows survive a restart, and the live API keeps working on top of them.
    node.close().expect("close");
    let node = open(dir.path());
    let me = node.resolve_user("@imp3").expect("handle");
    node.follow(me, me, ids[2]).expect("follow");
    assert_eq!(node.profile(ids[2]).expect("profile").followers_count, 2);
    let feed = node.home_feed(me, PageRequest::default()).expect("feed");
    assert_eq!(feed.items.len(), 3, "back-filled and merged");
    assert!(node
        .sst_bytes_per_cf()
        .expect("sizes")
        .iter()
        .any(|&(_, b)| b > 0));
}

#[test]
fn taken_handles_and_bad_edges_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = open(dir.path());
    let phc = "not-a-real-hash".to_string();
    node.import(set(&phc), &()).expect("first import");
    let again = node.import(set(&phc), &());
    assert!(matches!(again, Err(chirp_engine::Error::Conflict { .. })));
    let mut bad = set(&phc);
    for u in &mut bad.users {
        u.handle = format!("x{}", u.handle);
    }
    bad.follows.push((2, 2));
    assert!(matches!(
        node.import(bad, &()),
        Err(chirp_engine::Error::Invalid { .. })
    ));
}

#[test]
fn an_import_fences_the_oplog_so_replicas_bootstrap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = open(dir.path());
    // Some ordinary, logged history first, as a replica may already have applied.
    let before: Vec<u64> = (0..node.shard_count())
        .map(|s| node.log_position(s).expect("position").last_lsn)
        .collect();
    node.import(set("unused"), &()).expect("import");
    for (s, &had) in before.iter().enumerate() {
        let last = node.log_position(s).expect("position").last_lsn;
        let oldest = node.oldest_lsn(s).expect("oldest");
        // Whatever a replica had applied before the import, the next entry it needs is gone,
        // which is what makes the primary answer "trimmed" and the replica bootstrap.
        assert!(
            oldest > had + 1,
            "shard {s}: oldest {oldest}, replica at {had}"
        );
        assert_eq!(oldest, last, "shard {s}");
    }
}
