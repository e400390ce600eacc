//! Failure injection on the engine's write, fsync, apply, checkpoint-swap and fan-out paths
//! (the `fail` crate). Built only with the `failpoints` feature, in a test binary of its own,
//! because failpoints are process-global: `cargo test -p chirp-engine --features failpoints
//! --test failpoints`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chirp_engine::search::TagQuery;
use chirp_engine::tweets::NewTweet;
use chirp_engine::{NewUser, Node, NodeConfig, PageRequest};

/// Failpoints are process-wide: one test at a time, each starting from none.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    for (name, _) in fail::list() {
        fail::remove(name);
    }
    guard
}

fn open(dir: &std::path::Path, shards: usize) -> Arc<Node> {
    let mut config = NodeConfig::new(dir);
    config.shards = shards;
    config.block_cache_bytes = 8 << 20;
    Arc::new(Node::open(config).expect("open node"))
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

fn post(node: &Node, author: u64, text: &str) -> chirp_engine::Result<u64> {
    let t = NewTweet {
        text: text.into(),
        media: vec![],
        extra: Default::default(),
    };
    node.post_tweet(author, t).map(|t| t.id)
}

fn timeline(node: &Node, author: u64) -> Vec<String> {
    let page = PageRequest {
        after: None,
        limit: 100,
    };
    let tweets = node.user_timeline(author, page).expect("timeline");
    tweets.items.iter().map(|t| t.text.clone()).collect()
}

/// A group commit whose write fails must fail every batch in the group, not only the
/// leader's: a writer told Ok must find its tweet stored.
#[test]
fn every_batch_of_a_failed_group_fails() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let node = open(dir.path(), 1);
    let author = user(&node, "grouped");
    // The first group stalls while the other writers queue behind it; the group they then
    // form fails before its write.
    fail::cfg("shard::commit::prepare", "1*sleep(300)->1*return").expect("failpoint");
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let node = Arc::clone(&node);
            std::thread::spawn(move || {
                if i > 0 {
                    std::thread::sleep(Duration::from_millis(100));
                }
                let text = format!("post number {i}");
                (text.clone(), post(&node, author, &text))
            })
        })
        .collect();
    let outcomes: Vec<_> = writers
        .into_iter()
        .map(|w| w.join().expect("writer"))
        .collect();
    fail::remove("shard::commit::prepare");
    let stored = timeline(&node, author);
    let failed = outcomes.iter().filter(|(_, r)| r.is_err()).count();
    assert!(
        failed >= 2,
        "one group of several writers should have failed: {outcomes:?}"
    );
    for (text, result) in &outcomes {
        assert_eq!(
            result.is_ok(),
            stored.contains(text),
            "{text}: the writer was told {result:?}, stored: {stored:?}"
        );
    }
    // Nothing was written by the failed group, so the shard goes on taking writes.
    post(&node, author, "after the failed group").expect("post after");
}

/// A RocksDB write that fails leaves the WAL in an unknown state: the shard refuses writes
/// until the node restarts, and a restart finds nothing of the failed write.
#[test]
fn a_failed_write_stops_the_shard_until_restart() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let node = open(dir.path(), 1);
    let author = user(&node, "stopper");
    post(&node, author, "before").expect("post before");
    fail::cfg("shard::commit::write", "1*return").expect("failpoint");
    assert!(post(&node, author, "failed write").is_err());
    let after = post(&node, author, "after the failure");
    assert!(
        matches!(after, Err(chirp_engine::Error::Storage(ref m)) if m.contains("stopped")),
        "{after:?}"
    );
    fail::remove("shard::commit::write");
    drop(node);
    let node = open(dir.path(), 1);
    assert_eq!(timeline(&node, author), vec!["before".to_string()]);
    post(&node, author, "after restart").expect("post after restart");
}

/// A checkpoint swap that fails after the files moved puts the shard's own files back: the
/// shard keeps serving what it had, and keeps taking writes.
#[test]
fn a_failed_checkpoint_swap_keeps_the_shard() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let node = open(dir.path(), 1);
    let author = user(&node, "swapper");
    post(&node, author, "in the checkpoint").expect("post");
    let staged = dir.path().join("staged");
    node.checkpoint_shard(0, &staged).expect("checkpoint");
    post(&node, author, "after the checkpoint").expect("post");
    fail::cfg("shard::swap::open", "1*return").expect("failpoint");
    assert!(node.install_checkpoint(0, &staged).is_err());
    fail::remove("shard::swap::open");
    assert_eq!(
        timeline(&node, author),
        vec![
            "after the checkpoint".to_string(),
            "in the checkpoint".to_string()
        ]
    );
    post(&node, author, "still writable").expect("post after the failed swap");
}

/// A hashtag index that cannot take a tweet fails no request and poisons no lock: the post is
/// stored and acknowledged, and search keeps answering.
#[test]
fn a_full_hashtag_index_fails_no_post() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let node = open(dir.path(), 1);
    let author = user(&node, "tagger");
    let indexed = post(&node, author, "indexed #tagged").expect("post");
    fail::cfg("search::insert", "return").expect("failpoint");
    let unindexed = post(&node, author, "not indexed #tagged").expect("post is acknowledged");
    fail::remove("search::insert");
    assert!(node.tweet(unindexed).is_ok());
    let found = node
        .search(TagQuery::Tag("tagged".into()), PageRequest::default())
        .expect("search still answers");
    let ids: Vec<u64> = found.items.iter().map(|t| t.id).collect();
    assert_eq!(ids, vec![indexed]);
}

/// Saving the hashtag indexes writes a copy outside the index lock: a post (which needs the
/// write lock) finishes while a save is stalled in its file write.
#[test]
fn posts_do_not_wait_for_an_index_save() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let node = open(dir.path(), 1);
    let author = user(&node, "saver");
    let (entered_tx, entered_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    fail::cfg_callback("search::save", move || {
        let _ = entered_tx.send(());
        let _ = release_rx
            .lock()
            .map(|rx| rx.recv_timeout(Duration::from_secs(10)));
    })
    .expect("failpoint");
    let saver = {
        let node = Arc::clone(&node);
        let target = dir.path().join("backup");
        std::thread::spawn(move || node.checkpoint(&target).map(|_| ()))
    };
    entered_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the save started");
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    {
        let node = Arc::clone(&node);
        std::thread::spawn(move || {
            let _ = done_tx.send(post(&node, author, "posted during a save #saving"));
        });
    }
    let posted = done_rx.recv_timeout(Duration::from_secs(5));
    let _ = release_tx.send(());
    fail::remove("search::save");
    saver.join().expect("saver").expect("checkpoint");
    assert!(
        matches!(posted, Ok(Ok(_))),
        "the post waited for the save: {posted:?}"
    );
}

/// Two saves of the same index files never run at once (they share a temp file).
#[test]
fn index_saves_run_one_at_a_time() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let node = open(dir.path(), 2);
    let active = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    {
        let (active, most) = (Arc::clone(&active), Arc::clone(&most));
        fail::cfg_callback("search::save", move || {
            let now = active.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(50));
            active.fetch_sub(1, Ordering::SeqCst);
        })
        .expect("failpoint");
    }
    let savers: Vec<_> = (0..3)
        .map(|i| {
            let node = Arc::clone(&node);
            let target = dir.path().join(format!("backup-{i}"));
            std::thread::spawn(move || node.checkpoint(&target).map(|_| ()))
        })
        .collect();
    for s in savers {
        s.join().expect("saver").expect("checkpoint");
    }
    fail::remove("search::save");
    assert_eq!(most.load(Ordering::SeqCst), 1);
}

/// Sign-ups racing for one handle all get past the look-up and write their profiles before
/// any claims the handle (paused at `accounts::claim`): one wins, the others get a conflict
/// and their profiles are removed, so no stored profile is unreachable.
#[test]
fn losers_of_a_handle_race_leave_no_profile_behind() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = NodeConfig::new(dir.path());
    config.password_hash_slots = 4;
    let node = Arc::new(Node::open(config).expect("open node"));
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&reached);
    fail::cfg_callback("accounts::claim", move || {
        counter.fetch_add(1, Ordering::SeqCst);
        while fail::list().iter().any(|(n, _)| n == "accounts::hold") {
            std::thread::sleep(Duration::from_millis(5));
        }
    })
    .expect("callback");
    fail::cfg("accounts::hold", "off").expect("hold");
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let node = Arc::clone(&node);
            std::thread::spawn(move || {
                node.sign_up(NewUser {
                    handle: "contested".into(),
                    password: "a long enough password".into(),
                    display_name: None,
                    email: None,
                })
            })
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while reached.load(Ordering::SeqCst) < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "racers never reached the claim"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Each racer that finds the handle free dawdles before writing its claim: only the
    // handle lock keeps a second racer from finding it free too.
    fail::cfg("accounts::claim::checked", "sleep(100)").expect("checked");
    fail::remove("accounts::hold");
    let results: Vec<_> = racers
        .into_iter()
        .map(|t| t.join().expect("racer"))
        .collect();
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(results.iter().all(|r| matches!(
        r,
        Ok(_)
            | Err(chirp_engine::Error::Conflict {
                field: "handle",
                ..
            })
    )));
    fail::remove("accounts::claim");
    let report = node.verify(&mut |_| {}).expect("verify");
    assert_eq!(report.users, 1, "{report:?}");
}

/// Fencing a shard for a handover settles every write that got past its gate: the LSN it
/// returns is final (the new primary waits for exactly that one), later writes are refused,
/// and reopening the gate takes writes again.
#[test]
fn a_fenced_shard_settles_every_write_that_passed_its_gate() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let node = open(dir.path(), 1);
    let author = user(&node, "fenced");
    // A writer past the gate is held there while the fence comes.
    fail::cfg("shard::commit::gate", "1*sleep(400)").expect("failpoint");
    let writer = {
        let node = Arc::clone(&node);
        std::thread::spawn(move || post(&node, author, "past the gate"))
    };
    std::thread::sleep(Duration::from_millis(100));
    let last = node.fence_shard(0).expect("fence");
    let id = writer
        .join()
        .expect("writer")
        .expect("a write past the gate succeeds");
    assert_eq!(
        node.log_position(0).expect("position").last_lsn,
        last,
        "nothing is committed after the fence returned"
    );
    assert_eq!(node.tweet(id).expect("stored").text, "past the gate");
    assert!(matches!(
        post(&node, author, "after the fence"),
        Err(chirp_engine::Error::NotPrimary(_))
    ));
    node.set_shard_primary(0, true).expect("reopen");
    post(&node, author, "after the reopening").expect("writes again");
    assert!(node.log_position(0).expect("position").last_lsn > last);
}
