//! Fan-out under injected failures (the `fail` crate): a job whose copy fails is retried
//! while the node runs, without a restart, and home feeds stay within their cap whichever
//! worker writes them. Built only with the `failpoints` feature, in a binary of its own
//! because failpoints are process-global:
//! `cargo test -p chirp-engine --features failpoints --test failpoints_fanout`.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chirp_engine::{ImportSet, ImportUser, NewTweet, Node, NodeConfig, PageRequest};

/// Failpoints are global to the process: one test at a time.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Removes a failpoint when dropped, so a failed assertion lets a paused worker go and the
/// test fails instead of hanging in the node's drop (which joins the workers).
struct Resume(&'static str);

impl Drop for Resume {
    fn drop(&mut self) {
        fail::remove(self.0);
    }
}

fn open(dir: &std::path::Path, workers: usize, home_cap: usize) -> Node {
    let mut config = NodeConfig::new(dir);
    config.sync_writes = false;
    config.fanout_workers = workers;
    config.home_cap = home_cap;
    config.block_cache_bytes = 8 << 20;
    Node::open(config).expect("open")
}

/// `n` users; every one after the first follows the first. Returns their ids.
fn users(node: &Node, n: usize) -> Vec<u64> {
    let phc = chirp_engine::accounts::hash_password("fan-out password").expect("hash");
    let set = ImportSet {
        users: (0..n)
            .map(|i| ImportUser {
                handle: format!("fan{i}"),
                display_name: format!("Fan {i}"),
                password_phc: phc.clone(),
            })
            .collect(),
        follows: (1..n as u32).map(|i| (i, 0)).collect(),
        tweets: Vec::new(),
    };
    node.import(set, &()).expect("import").user_ids
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

/// The ids in a user's home feed (its first 100).
fn feed(node: &Node, user: u64) -> Vec<u64> {
    let page = PageRequest {
        after: None,
        limit: 100,
    };
    let items = node.home_feed(user, page).expect("feed").items;
    items.iter().map(|t| t.id).collect()
}

#[test]
fn a_failed_fan_out_is_retried_without_a_restart() {
    let _serial = serial();
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().expect("tempdir");
    let node = open(dir.path(), 2, 800);
    let ids = users(&node, 4);
    let followers = &ids[1..];

    fail::cfg("fanout::copy", "return").expect("failpoint");
    let tweet = post(&node, ids[0], "posted while fan-out fails");
    std::thread::sleep(Duration::from_millis(300));
    for &f in followers {
        assert!(
            !feed(&node, f).contains(&tweet),
            "the failpoint did not fire"
        );
    }
    fail::remove("fanout::copy");

    let deadline = Instant::now() + Duration::from_secs(5);
    while !followers.iter().all(|&f| feed(&node, f).contains(&tweet)) {
        assert!(
            Instant::now() < deadline,
            "the failed fan-out was not retried within 5 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(node.wait_fanout_idle(Duration::from_secs(5)));
    let stats = node.stats().expect("stats").fanout;
    assert!(stats.failures >= 1, "{stats:?}");
    assert!(stats.retries >= 1, "{stats:?}");
    assert_eq!(stats.jobs_done, 1, "{stats:?}");
    assert_eq!(node.verify(&mut |_| {}).expect("verify").pending_fanout, 0);
    node.close().expect("close");
    scenario.teardown();
}

#[test]
fn feeds_stay_within_their_cap_whichever_worker_writes_them() {
    let _serial = serial();
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().expect("tempdir");
    let (workers, cap) = (4, 8);
    let node = open(dir.path(), workers, cap);
    let ids = users(&node, 3);
    for i in 0..120 {
        post(&node, ids[0], &format!("tweet {i}"));
    }
    assert!(node.wait_fanout_idle(Duration::from_secs(20)));
    // Trimming is amortized: a feed gets back to the cap every quarter of the cap's inserts
    // (here 2), plus at most one row in flight per worker.
    let bound = cap + cap / 4 + workers;
    for &user in &ids {
        let rows = feed(&node, user).len();
        assert!(rows >= cap, "user {user} kept {rows} rows");
        assert!(rows <= bound, "user {user} kept {rows} rows, cap {cap}");
    }
    node.close().expect("close");
    scenario.teardown();
}

#[test]
fn a_failing_fan_out_is_retried_with_backoff_and_never_lost() {
    let _serial = serial();
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().expect("tempdir");
    let node = open(dir.path(), 2, 800);
    let ids = users(&node, 2);
    fail::cfg("fanout::copy", "return").expect("failpoint");
    let posted: Vec<u64> = (0..20)
        .map(|i| post(&node, ids[0], &format!("failing {i}")))
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let stats = node.stats().expect("stats").fanout;
    // Backoff: 100 ms doubling gives each job at most 4 retries in 1.5 s.
    assert!(stats.retries <= 20 * 4, "{stats:?}");
    assert_eq!(stats.jobs_done, 0, "{stats:?}");
    assert_eq!(node.fanout_pending(), 20, "{stats:?}");
    fail::remove("fanout::copy");
    assert!(node.wait_fanout_idle(Duration::from_secs(15)));
    let got = feed(&node, ids[1]);
    for id in posted {
        assert!(got.contains(&id));
    }
    node.close().expect("close");
    scenario.teardown();
}

#[test]
fn a_full_queue_leaves_jobs_to_the_outbox_sweep_and_none_is_lost() {
    let _serial = serial();
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().expect("tempdir");
    let node = open(dir.path(), 1, 5000);
    let ids = users(&node, 2);
    // The only worker stops in its first job, so its queue (1,024 jobs) fills up.
    fail::cfg("fanout::copy", "pause").expect("failpoint");
    let _resume = Resume("fanout::copy");
    let posts = 1200;
    let mut last = 0;
    for i in 0..posts {
        last = post(&node, ids[0], &format!("burst {i}"));
    }
    // The maintenance thread (every 100 ms) starts a sweep, which waits for room in the full
    // queue: every job is still counted once.
    std::thread::sleep(Duration::from_millis(400));
    let stats = node.stats().expect("stats").fanout;
    assert!(stats.overflows > 0, "{stats:?}");
    assert_eq!(node.fanout_pending(), posts, "{stats:?}");
    fail::remove("fanout::copy");

    assert!(node.wait_fanout_idle(Duration::from_secs(30)));
    let report = node.verify(&mut |_| {}).expect("verify");
    assert_eq!(report.pending_fanout, 0, "{report:?}");
    // Every post reached the follower (and the author's own feed): no trim at this cap.
    assert_eq!(report.home_rows, 2 * posts, "{report:?}");
    assert_eq!(feed(&node, ids[1]).first(), Some(&last));
    node.close().expect("close");
    scenario.teardown();
}
