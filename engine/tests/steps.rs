//! Operations across nodes, through shard steps: two nodes in one process, each holding half
//! of the shards, with a `Remote` that hands a step to the node holding its shard. Handles
//! are unique across both, follows and feeds span them, fan-out reaches followers held by the
//! other node, search and celebrities are seen from either side.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use chirp_engine::ids::shard_of_handle;
use chirp_engine::{
    Error, NewTweet, NewUser, Node, NodeConfig, PageRequest, Remote, Reply, ShardId, Step, TagQuery,
};

/// Hands each step to the node holding its shard, as the server does over the network.
#[derive(Default)]
struct InProcess {
    nodes: Mutex<Vec<Weak<Node>>>,
}

impl Remote for InProcess {
    fn run(&self, shard: ShardId, step: &Step) -> chirp_engine::Result<Reply> {
        let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let owner = nodes
            .iter()
            .filter_map(Weak::upgrade)
            .find(|n| n.placement().holds(shard))
            .ok_or(Error::NotHere(shard))?;
        // Through serde, as on the wire.
        let step: Step = serde_json::from_value(serde_json::to_value(step).expect("encode"))
            .expect("decode step");
        let reply = owner
            .run_step(shard, step)
            .map_err(|e| chirp_engine::StepFailure::from_error(&e).into_error())?;
        Ok(serde_json::from_value(serde_json::to_value(&reply).expect("encode")).expect("decode"))
    }
}

const SHARDS: usize = 4;

fn node(dir: &std::path::Path, hold: Vec<usize>, remote: &Arc<InProcess>) -> Arc<Node> {
    let mut config = NodeConfig::new(dir);
    config.sync_writes = false;
    config.cluster = Some("steps".into());
    config.hold = Some(hold.clone());
    config.celebrity_threshold = 2;
    config.backfill = 10;
    let node = Arc::new(Node::open(config).expect("open"));
    for s in hold {
        node.set_shard_primary(s, true).expect("primary");
    }
    node.set_remote(Arc::clone(remote) as Arc<dyn Remote>);
    remote
        .nodes
        .lock()
        .expect("nodes")
        .push(Arc::downgrade(&node));
    node
}

/// A handle whose claim lives on `shard`.
fn handle_on(prefix: &str, shard: usize) -> String {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|h| shard_of_handle(&h.to_ascii_lowercase(), SHARDS) == shard)
        .expect("a handle")
}

fn sign_up(node: &Node, handle: &str) -> u64 {
    node.sign_up(NewUser {
        handle: handle.into(),
        password: "a long enough password".into(),
        display_name: None,
        email: None,
    })
    .expect("sign up")
    .id
}

fn post(node: &Node, author: u64, text: &str) -> u64 {
    node.post_tweet(
        author,
        NewTweet {
            text: text.into(),
            ..NewTweet::default()
        },
    )
    .expect("post")
    .id
}

fn page() -> PageRequest {
    PageRequest {
        after: None,
        limit: 20,
    }
}

fn feed(node: &Node, user: u64) -> Vec<u64> {
    let page = node.home_feed(user, page()).expect("feed");
    page.items.iter().map(|t| t.id).collect()
}

fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn follows_feeds_fan_out_and_search_span_nodes() {
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let remote = Arc::new(InProcess::default());
    let a = node(dir_a.path(), vec![0, 1], &remote);
    let b = node(dir_b.path(), vec![2, 3], &remote);

    // Each node mints users on its own shards; handles claim on whichever shard they hash to.
    let alice = sign_up(&a, &handle_on("alice", 2));
    let bob = sign_up(&b, &handle_on("bob", 0));
    assert!(a.placement().holds(a.placement().of_user(alice)));
    assert!(b.placement().holds(b.placement().of_user(bob)));
    let taken = NewUser {
        handle: handle_on("alice", 2).to_uppercase(),
        password: "a long enough password".into(),
        display_name: None,
        email: None,
    };
    assert!(matches!(
        b.sign_up(taken),
        Err(Error::Conflict {
            field: "handle",
            ..
        })
    ));
    assert_eq!(
        b.resolve_user(&format!("@{}", handle_on("alice", 2)))
            .expect("@alice"),
        alice
    );
    assert_eq!(a.profile(bob).expect("bob from a").id, bob);

    // alice (a) follows bob (b): bob's side is written on b.
    let early = post(&b, bob, "before the follow");
    a.follow(alice, alice, bob).expect("follow");
    assert_eq!(b.profile(bob).expect("bob").followers_count, 1);
    let followers = b.followers(bob, page()).expect("followers");
    assert_eq!(
        followers.items.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![alice]
    );
    assert_eq!(feed(&a, alice), vec![early], "back-filled from b");

    // bob posts on b; the fan-out writes alice's feed row on a; a hydrates from b.
    let later = post(&b, bob, "after the follow #spanning");
    eventually("bob's post in alice's feed", || {
        feed(&a, alice) == vec![later, early]
    });
    let found = a
        .search(TagQuery::Tag("spanning".into()), page())
        .expect("search");
    assert_eq!(
        found.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![later]
    );

    // A celebrity on b (threshold 2): not fanned out, merged into a's feeds once a has
    // learnt b's celebrities.
    let carol = sign_up(&a, &handle_on("carol", 1));
    let star = sign_up(&b, &handle_on("star", 3));
    a.follow(alice, alice, star).expect("alice follows star");
    a.follow(carol, carol, star).expect("carol follows star");
    b.follow(bob, bob, star).expect("bob follows star");
    assert_eq!(b.profile(star).expect("star").followers_count, 3);
    let shine = post(&b, star, "a star speaks");
    eventually("the star's post merged into carol's feed", || {
        feed(&a, carol).first() == Some(&shine)
    });

    // Unfollowing takes bob's tweets out of alice's feed and his count back down.
    a.unfollow(alice, alice, bob).expect("unfollow");
    assert_eq!(b.profile(bob).expect("bob").followers_count, 0);
    assert!(!feed(&a, alice).contains(&later));

    // A step sent to a node that does not hold its shard is refused, not run.
    let elsewhere = Step::Profile { user: bob };
    assert!(matches!(
        a.run_step(a.placement().of_user(bob), elsewhere),
        Err(Error::NotHere(_))
    ));
    let misrouted = Step::Profile { user: alice };
    assert!(matches!(
        a.run_step(1 - a.placement().of_user(alice) % 2, misrouted),
        Err(Error::Invalid { field: "shard", .. })
    ));
}
