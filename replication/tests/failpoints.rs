//! A replica whose apply fails stops that shard loudly (its status says why) instead of
//! reporting a connection error and retrying forever. Built with the `failpoints` feature:
//! `cargo test -p chirp-replication --features failpoints --test failpoints`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chirp_engine::tweets::NewTweet;
use chirp_engine::{NewUser, Node, NodeConfig, NodeRole};
use chirp_replication::{AckMode, Config, Replication};

fn open(dir: &std::path::Path, role: NodeRole) -> Arc<Node> {
    let mut c = NodeConfig::new(dir);
    c.role = role;
    c.shards = 1;
    c.block_cache_bytes = 8 << 20;
    Arc::new(Node::open(c).expect("open node"))
}

fn config(root: &std::path::Path, name: &str, primary: Option<std::net::SocketAddr>) -> Config {
    let tls = root.join(format!("{name}-tls"));
    chirp_replication::tls::issue_node_cert(&root.join("ca"), name, &[], &tls).expect("cert");
    Config {
        node_name: name.into(),
        cluster: "failpoints".into(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        api: String::new(),
        tls_dir: tls,
        primary,
        ack: AckMode::Async,
        sync_timeout: Duration::from_secs(5),
        oplog_retain: u64::MAX / 2,
        data_dir: root.join(format!("{name}-data")),
    }
}

fn post(node: &Node, author: u64, text: &str) {
    let t = NewTweet {
        text: text.into(),
        media: vec![],
        extra: Default::default(),
    };
    node.post_tweet(author, t).expect("post");
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_apply_stops_the_shard_loudly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    chirp_replication::tls::create_cluster_ca(&root.join("ca")).expect("ca");
    let primary = open(&root.join("p-data"), NodeRole::Primary);
    let p = Replication::start(Arc::clone(&primary), config(root, "p", None))
        .await
        .expect("primary");
    let replica = open(&root.join("r-data"), NodeRole::Replica);
    let r = Replication::start(
        Arc::clone(&replica),
        config(root, "r", Some(p.local_addr())),
    )
    .await
    .expect("replica");
    let author = primary
        .sign_up(NewUser {
            handle: "shipper".into(),
            password: "a long enough password".into(),
            display_name: None,
            email: None,
        })
        .expect("sign up")
        .id;
    post(&primary, author, "applied normally");
    let lsn = |n: &Node| n.log_position(0).map(|p| p.last_lsn).unwrap_or(0);
    wait_for("the replica to catch up", || lsn(&replica) == lsn(&primary)).await;

    fail::cfg("shard::apply::write", "1*return").expect("failpoint");
    post(&primary, author, "this one fails to apply");
    let stopped = || {
        r.status()["shards"][0]["stopped"]
            .as_str()
            .map(String::from)
    };
    wait_for("the shard to stop", || stopped().is_some()).await;
    fail::remove("shard::apply::write");
    let why = stopped().unwrap_or_default();
    assert!(why.contains("failpoint shard::apply::write"), "{why}");
    assert_eq!(r.status()["shards"][0]["connected"], false);

    // It stays stopped: later entries are not applied behind the failed one.
    let held = lsn(&replica);
    post(&primary, author, "after the failure");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(lsn(&replica), held);
    assert!(lsn(&primary) > held);
    r.shutdown().await;
    p.shutdown().await;
}
