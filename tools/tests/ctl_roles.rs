//! `chirpctl --data` on a replica's stopped data dir. The dir holds a fan-out job its primary
//! had not finished; run there, that job would write oplog entries at LSNs the primary also
//! uses, in the primary's epoch. Read-only commands must leave the log as it was, commands
//! that write must be refused, and a restored checkpoint of the dir is still a replica's.

use std::path::Path;
use std::process::{Command, Output};

use chirp_engine::{NewTweet, NewUser, Node, NodeConfig, NodeRole};
use serde_json::Value;

fn config(dir: &Path) -> NodeConfig {
    let mut c = NodeConfig::new(dir);
    c.sync_writes = false;
    c.block_cache_bytes = 8 << 20;
    c.fanout_workers = 2;
    c
}

/// Makes a primary in `primary_dir` (alice, followed by bob, posts once) and a replica in
/// `replica_dir` that applied the primary's log up to the post: the tweet and its outbox row,
/// not the entries that fan it out and drop the row.
fn replica_with_pending_fanout(primary_dir: &Path, replica_dir: &Path) {
    let primary = Node::open(config(primary_dir)).expect("open the primary");
    let mut ids = Vec::new();
    for handle in ["alice", "bob"] {
        let user = NewUser {
            handle: handle.into(),
            password: "correct horse".into(),
            display_name: None,
            email: None,
        };
        ids.push(primary.sign_up(user).expect("sign up").id);
    }
    let (alice, bob) = (ids[0], ids[1]);
    primary.follow(bob, bob, alice).expect("follow");
    let before: Vec<u64> = (0..primary.shard_count())
        .map(|s| primary.log_position(s).expect("position").last_lsn)
        .collect();
    let (posted, writes) = chirp_engine::track_writes(|| {
        primary.post_tweet(
            alice,
            NewTweet {
                text: "fanned out by the primary only".into(),
                ..NewTweet::default()
            },
        )
    });
    posted.expect("post");

    let mut replica_config = config(replica_dir);
    replica_config.role = NodeRole::Replica;
    let replica = Node::open(replica_config).expect("open the replica");
    for (s, &upto) in before.iter().enumerate() {
        let upto = writes.iter().find(|w| w.0 == s).map_or(upto, |w| w.1);
        let raws: Vec<Vec<u8>> = primary
            .read_oplog(s, 0, 64 << 20)
            .expect("read the oplog")
            .into_iter()
            .filter(|(lsn, _)| *lsn <= upto)
            .map(|(_, raw)| raw)
            .collect();
        if !raws.is_empty() {
            replica.apply_replicated_batch(s, &raws).expect("apply");
        }
    }
    replica.close().expect("close the replica");
    primary.close().expect("close the primary");
}

/// Each shard's last LSN in a stopped replica's dir.
fn last_lsns(dir: &Path) -> Vec<u64> {
    let mut c = config(dir);
    c.role = NodeRole::Replica;
    c.create = false;
    let node = Node::open(c).expect("open");
    let lsns = (0..node.shard_count())
        .map(|s| node.log_position(s).expect("position").last_lsn)
        .collect();
    node.close().expect("close");
    lsns
}

fn ctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chirpctl"))
        .args(args)
        .env_remove("CHIRP_ADMIN")
        .output()
        .expect("run chirpctl")
}

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

#[test]
fn a_replicas_data_dir_is_read_only_to_chirpctl() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let replica = tmp.path().join("replica");
    replica_with_pending_fanout(&tmp.path().join("primary"), &replica);
    let data = replica.to_str().expect("utf-8");
    let before = last_lsns(&replica);

    for _ in 0..3 {
        let status = ctl_json(&["--data", data, "status"]);
        assert_eq!(status["shards"].as_array().map(Vec::len), Some(4));
        assert_eq!(status["role"], "replica");
        let report = ctl_json(&["--data", data, "verify"]);
        assert_eq!(report["problems"], 0, "{report}");
        assert_eq!(report["pending_fanout"], 1, "{report}");
    }
    ctl_json(&["--data", data, "compact"]);
    let alice = ctl_json(&["--data", data, "users", "show", "alice"]);
    assert_eq!(alice["followers"], 1, "{alice}");

    for write in [
        vec!["users", "suspend", "bob"],
        vec!["users", "token", "bob"],
        vec!["users", "create", "carol", "--password", "correct horse"],
    ] {
        let mut args = vec!["--data", data];
        args.extend(write.iter().copied());
        let out = ctl(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{write:?} was taken on a replica");
        assert!(stderr.contains("replica"), "{write:?}: {stderr}");
    }
    assert_eq!(last_lsns(&replica), before, "the replica's log changed");

    // A checkpoint of a replica restores as a replica, its job still pending.
    let backup = tmp.path().join("backup");
    let restored = tmp.path().join("restored");
    let backup_s = backup.to_str().expect("utf-8");
    let restored_s = restored.to_str().expect("utf-8");
    ctl_json(&["--data", data, "checkpoint", backup_s]);
    ctl_json(&["--data", restored_s, "restore", backup_s]);
    assert_eq!(last_lsns(&restored), before);
    let out = ctl(&["--data", restored_s, "users", "suspend", "bob"]);
    assert!(!out.status.success(), "a restored replica took a write");
    let report = ctl_json(&["--data", restored_s, "verify"]);
    assert_eq!(report["pending_fanout"], 1, "{report}");
}
