//! `chirpctl` from an operator's side: the real binary against a live `chirp` node and
//! against the data dir of a stopped one.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A running `chirp serve` (the shared test kit's launcher), killed on drop.
type Node = chirp_testkit::node::Chirp;

/// SIGTERM, and wait for the clean exit (the shards are flushed and unlocked).
fn stop(mut node: Node) {
    assert!(node.terminate().success());
}

fn log_in(node: &Node, handle: &str, password: &str) -> (u16, Value) {
    node.call(
        "POST",
        "/sessions",
        None,
        Some(json!({"handle": handle, "password": password})),
    )
}

/// Runs `chirpctl` with these arguments.
fn ctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chirpctl"))
        .args(args)
        .env_remove("CHIRP_ADMIN")
        .output()
        .expect("run chirpctl")
}

/// Runs `chirpctl ... --json`, expects success and parses the output.
fn ctl_json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = ctl(&all);
    assert!(
        out.status.success(),
        "chirpctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A small store: alice with tweets (some deleted), bob following her.
fn populate(node: &Node) -> (String, String, Vec<String>) {
    let (alice, alice_t) = node.user("alice");
    let (bob, bob_t) = node.user("bob");
    assert_eq!(
        node.call(
            "POST",
            &format!("/{bob}/follow/{alice}"),
            Some(&bob_t),
            None
        )
        .0,
        200
    );
    let mut ids: Vec<String> = (0..40)
        .map(|i| node.tweet(&alice_t, &format!("tweet {i} #ops")))
        .collect();
    for id in ids.drain(..10) {
        assert_eq!(
            node.call("DELETE", &format!("/tweets/{id}"), Some(&alice_t), None)
                .0,
            204
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.call("GET", "/feed?limit=100", Some(&bob_t), None).1["tweets"]
        .as_array()
        .map(Vec::len)
        != Some(30)
    {
        assert!(Instant::now() < deadline, "fan-out did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    (alice, bob_t, ids)
}

#[test]
fn live_node_status_accounts_compaction_checkpoint_and_restore() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let node = Node::start(&dir, &[]);
    let admin = node.admin.clone();
    let (alice, bob_t, ids) = populate(&node);

    // Without the admin token the node refuses chirpctl.
    let refused = ctl(&["--admin", &admin, "status"]);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("401"), "{}", text(&refused));

    // Status, as JSON and as a table.
    let status = ctl_json(&[
        "--admin",
        &admin,
        "--admin-token",
        &node.admin_token,
        "status",
    ]);
    assert_eq!(
        status["shards"].as_array().map(Vec::len),
        Some(4),
        "{status}"
    );
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    let table = ctl(&[
        "--admin",
        &admin,
        "--admin-token",
        &node.admin_token,
        "status",
    ]);
    assert!(table.status.success());
    let table = text(&table);
    assert!(
        table.contains("SHARD") && table.contains("user_tweets") && table.contains("up "),
        "{table}"
    );
    assert!(table.contains("tweet cache:"), "{table}");

    // The admin listener is not the public API, and the public API has no admin routes.
    assert_ne!(node.admin, node.base);
    assert_eq!(node.call("GET", "/metrics", None, None).0, 404);
    assert_eq!(node.call("GET", "/status", None, None).0, 404);

    // Accounts.
    let created = ctl_json(&[
        "--admin",
        &admin,
        "--admin-token",
        &node.admin_token,
        "users",
        "create",
        "carol",
        "--password",
        "carol password",
    ]);
    assert_eq!(created["account"]["handle"], "carol");
    assert_eq!(log_in(&node, "carol", "carol password").0, 200);
    let minted = ctl_json(&[
        "--admin",
        &admin,
        "--admin-token",
        &node.admin_token,
        "users",
        "token",
        "@carol",
    ]);
    let token = minted["token"].as_str().expect("token").to_string();
    assert_eq!(node.call("GET", "/feed", Some(&token), None).0, 200);
    let suspended = ctl_json(&[
        "--admin",
        &admin,
        "--admin-token",
        &node.admin_token,
        "users",
        "suspend",
        "carol",
    ]);
    assert_eq!(suspended["suspended"], true);
    assert_eq!(log_in(&node, "carol", "carol password").0, 403);
    assert_eq!(node.call("GET", "/feed", Some(&token), None).0, 403);
    ctl_json(&[
        "--admin",
        &admin,
        "--admin-token",
        &node.admin_token,
        "users",
        "unsuspend",
        "carol",
    ]);
    assert_eq!(log_in(&node, "carol", "carol password").0, 200);
    let reset = ctl_json(&[
        "--admin",
        &admin,
        "--admin-token",
        &node.admin_token,
        "users",
        "reset-password",
        "carol",
        "--password",
        "fresh password",
    ]);
    assert!(
        reset["revoked_tokens"].as_u64().is_some_and(|n| n >= 3),
        "{reset}"
    );
    assert_eq!(node.call("GET", "/feed", Some(&token), None).0, 401);
    assert_eq!(log_in(&node, "carol", "carol password").0, 401);
    assert_eq!(log_in(&node, "carol", "fresh password").0, 200);
    let missing = ctl(&[
        "--admin",
        &admin,
        "--admin-token",
        &node.admin_token,
        "users",
        "suspend",
        "nobody",
    ]);
    assert!(!missing.status.success());
    assert!(text(&missing).contains("not found"), "{}", text(&missing));

    // A running node's data dir cannot be opened behind its back.
    let locked = ctl(&["--data", dir.to_str().expect("utf-8"), "status"]);
    assert!(!locked.status.success());
    assert!(text(&locked).contains("in use"), "{}", text(&locked));

    // Compaction drops the deleted tweets and the finished fan-out jobs.
    let report = ctl_json(&[
        "--admin",
        &admin,
        "--admin-token",
        &node.admin_token,
        "compact",
    ]);
    let before = report["bytes_before"].as_u64().expect("before");
    let after = report["bytes_after"].as_u64().expect("after");
    eprintln!(
        "compaction: {before} -> {after} bytes in {} ms",
        report["millis"]
    );
    assert!(before > 0 && after > 0 && after < before, "{report}");
    assert_eq!(report["shards"].as_array().map(Vec::len), Some(4));
    let one = ctl_json(&[
        "--admin",
        &admin,
        "--admin-token",
        &node.admin_token,
        "compact",
        "--shard",
        "2",
    ]);
    assert_eq!(one["shards"][0]["shard"], 2);
    assert!(!ctl(&[
        "--admin",
        &admin,
        "--admin-token",
        &node.admin_token,
        "compact",
        "--shard",
        "9"
    ])
    .status
    .success());

    // A checkpoint of the live node carries side files kept beside the shards.
    // (000.extra stands for any file a future part of the node keeps beside the shards.)
    std::fs::write(dir.join("shards").join("000.extra"), b"side file").expect("side file");
    let backup = tmp.path().join("backup");
    let report = ctl_json(&[
        "--admin",
        &admin,
        "--admin-token",
        &node.admin_token,
        "checkpoint",
        backup.to_str().expect("utf-8"),
    ]);
    eprintln!(
        "checkpoint: {} bytes in {} ms",
        report["bytes"], report["millis"]
    );
    assert_eq!(report["shards"], 4);
    assert_eq!(
        std::fs::read(backup.join("shards").join("000.extra")).expect("copied"),
        b"side file"
    );
    for shard in 0..4 {
        let tags = backup.join("shards").join(format!("{shard:03}.tags"));
        assert!(
            tags.is_file(),
            "the hashtag index of shard {shard} is in the checkpoint"
        );
    }
    assert!(backup.join("chirp.json").is_file());
    let again = ctl(&[
        "--admin",
        &admin,
        "--admin-token",
        &node.admin_token,
        "checkpoint",
        backup.to_str().expect("utf-8"),
    ]);
    assert!(!again.status.success(), "a checkpoint never overwrites");

    // Restore into a new dir; a node there serves the same data.
    let restored = tmp.path().join("restored");
    let report = ctl_json(&[
        "restore",
        backup.to_str().expect("utf-8"),
        "--data",
        restored.to_str().expect("utf-8"),
    ]);
    assert_eq!(report["shards"], 4);
    let twin = Node::start(&restored, &[]);
    for path in [
        format!("/{alice}/profile"),
        format!("/{alice}/tweets?limit=100"),
        format!("/{alice}/followers"),
        "/@bob/following".to_string(),
        "/@carol/profile".to_string(),
        format!("/tweets/{}", ids[0]),
        "/search/tags/ops?limit=100".to_string(),
    ] {
        let (s, original) = node.call("GET", &path, None, None);
        assert_eq!(s, 200, "{path}");
        assert_eq!(
            twin.call("GET", &path, None, None),
            (200, original),
            "{path}"
        );
    }
    // Sessions are data too: bob's token works on the restored node.
    assert_eq!(
        twin.call("GET", "/feed?limit=100", Some(&bob_t), None),
        node.call("GET", "/feed?limit=100", Some(&bob_t), None)
    );
    let not_empty = ctl(&[
        "restore",
        backup.to_str().expect("utf-8"),
        "--data",
        restored.to_str().expect("utf-8"),
    ]);
    assert!(!not_empty.status.success());
    assert!(
        text(&not_empty).contains("not empty"),
        "{}",
        text(&not_empty)
    );
}

#[test]
fn stopped_data_dir_status_compaction_and_verify() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let data = dir.to_str().expect("utf-8").to_string();
    let node = Node::start(&dir, &[]);
    let (alice, _, ids) = populate(&node);
    stop(node);

    let status = ctl_json(&["--data", &data, "status"]);
    assert_eq!(status["shards"].as_array().map(Vec::len), Some(4));
    let report = ctl_json(&["--data", &data, "compact", "--shard", "1"]);
    assert_eq!(report["shards"][0]["shard"], 1);
    let alice_account = ctl_json(&["--data", &data, "users", "show", &alice]);
    assert_eq!(alice_account["tweets"], 30);
    assert_eq!(alice_account["followers"], 1);

    let healthy = ctl(&["--data", &data, "verify"]);
    assert!(healthy.status.success(), "{}", text(&healthy));
    assert!(text(&healthy).contains("OK"), "{}", text(&healthy));
    let report = ctl_json(&["--data", &data, "verify"]);
    assert_eq!(report["problems"], 0);
    assert_eq!(report["tweets"], 30);
    assert_eq!(report["users"], 2);

    // Damage the stopped store: a tweet row gone (its timeline row left behind) and a
    // counter that no longer matches the edges.
    {
        let mut config = chirp_engine::NodeConfig::new(&dir);
        config.create = false;
        let engine = chirp_engine::Node::open(config).expect("open");
        let tweet: u64 = ids[3].parse().expect("id");
        let user: u64 = alice.parse().expect("id");
        engine.damage_drop_tweet_row(tweet).expect("damage");
        engine.damage_followers_counter(user, 5).expect("damage");
        engine.close().expect("close");
    }
    let damaged = ctl(&["--data", &data, "verify"]);
    assert_eq!(damaged.status.code(), Some(2), "{}", text(&damaged));
    let out = text(&damaged);
    // Three: the dropped tweet also leaves its hashtag-index entry naming nothing.
    assert!(out.contains("DAMAGED: 3 problem(s)"), "{out}");
    assert!(out.contains("index-entry-without-tweet"), "{out}");
    assert!(
        out.contains("timeline-row-without-tweet") && out.contains(&ids[3]),
        "{out}"
    );
    assert!(
        out.contains("counter-mismatch")
            && out.contains("followers counter is 6, but 1 rows exist"),
        "{out}"
    );
    let json_out = ctl(&["--data", &data, "verify", "--json"]);
    assert_eq!(json_out.status.code(), Some(2));
    let report: Value = serde_json::from_slice(&json_out.stdout).expect("json");
    assert_eq!(report["problems"], 3, "{report}");

    // A dir without Chirp data is refused, not created.
    let nothing = tmp.path().join("nothing");
    let out = ctl(&["--data", nothing.to_str().expect("utf-8"), "status"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("no Chirp data"), "{}", text(&out));
    assert!(!nothing.exists());
}
