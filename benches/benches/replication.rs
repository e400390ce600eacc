//! Replication throughput and lag over loopback QUIC (plain main, prints figures): a primary
//! with a preloaded oplog and a fresh replica catching up (entries/s, MB/s), then the lag of a
//! connected replica under a steady write load. `cargo bench -p chirp-benches --bench
//! replication`; `CHIRP_BENCH_ENTRIES` and `CHIRP_BENCH_RATE` change the sizes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chirp_engine::{NewTweet, NewUser, Node, NodeConfig, NodeRole};
use chirp_replication::{AckMode, Config, Replication};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn open(dir: &std::path::Path, role: NodeRole) -> Arc<Node> {
    let mut c = NodeConfig::new(dir);
    c.role = role;
    c.block_cache_bytes = 64 << 20;
    Arc::new(Node::open(c).expect("open node"))
}

fn config(root: &std::path::Path, name: &str, primary: Option<std::net::SocketAddr>) -> Config {
    let tls = root.join(format!("{name}-tls"));
    chirp_replication::tls::issue_node_cert(&root.join("ca"), name, &[], &tls).expect("cert");
    Config {
        node_name: name.into(),
        cluster: "bench".into(),
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

fn caught_up(p: &Node, r: &Node) -> bool {
    (0..p.shard_count()).all(|s| {
        p.log_position(s).map(|x| x.last_lsn).ok() == r.log_position(s).map(|x| x.last_lsn).ok()
    })
}

fn main() {
    let entries = env("CHIRP_BENCH_ENTRIES", 20_000);
    let rate = env("CHIRP_BENCH_RATE", 1_000);
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    chirp_replication::tls::create_cluster_ca(&root.join("ca")).expect("ca");
    let rt = tokio::runtime::Runtime::new().expect("runtime");

    let primary = open(&root.join("p-data"), NodeRole::Primary);
    let user = primary
        .sign_up(NewUser {
            handle: "bench".into(),
            password: "bench password".into(),
            display_name: None,
            email: None,
        })
        .expect("sign up")
        .id;
    let post = |i: u64| {
        let t = NewTweet {
            text: format!("tweet number {i} of the replication benchmark #bench #quic"),
            media: vec![],
            extra: Default::default(),
        };
        primary.post_tweet(user, t).expect("post");
    };
    for i in 0..entries {
        post(i);
    }
    std::thread::sleep(Duration::from_millis(500)); // let fan-out settle
    let bytes: usize = (0..primary.shard_count())
        .map(|s| {
            primary
                .read_oplog(s, 0, usize::MAX)
                .map(|v| v.iter().map(|(_, raw)| raw.len()).sum::<usize>())
                .unwrap_or(0)
        })
        .sum();
    let lsns: u64 = (0..primary.shard_count())
        .map(|s| primary.log_position(s).map(|p| p.last_lsn).unwrap_or(0))
        .sum();

    let p_repl = rt
        .block_on(Replication::start(
            Arc::clone(&primary),
            config(root, "p", None),
        ))
        .expect("primary replication");
    let replica = open(&root.join("r-data"), NodeRole::Replica);
    let started = Instant::now();
    let r_repl = rt
        .block_on(Replication::start(
            Arc::clone(&replica),
            config(root, "r", Some(p_repl.local_addr())),
        ))
        .expect("replica replication");
    while !caught_up(&primary, &replica) {
        std::thread::sleep(Duration::from_millis(2));
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "catch-up: {lsns} entries, {:.1} MB in {secs:.2} s: {:.0} entries/s, {:.1} MB/s",
        bytes as f64 / 1e6,
        lsns as f64 / secs,
        bytes as f64 / 1e6 / secs
    );

    // Steady load: `rate` posts per second for 5 s, sampling the replica's lag.
    let (mut max_lsn, mut max_s, mut sum_lsn, mut samples) = (0u64, 0f64, 0u64, 0u64);
    let load = Instant::now();
    let mut next = Instant::now();
    let mut i = entries;
    let mut last_sample = Instant::now();
    while load.elapsed() < Duration::from_secs(5) {
        post(i);
        i += 1;
        next += Duration::from_micros(1_000_000 / rate.max(1));
        if let Some(d) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        if last_sample.elapsed() >= Duration::from_millis(20) {
            last_sample = Instant::now();
            let st = p_repl.status();
            for s in st["shards"].as_array().into_iter().flatten() {
                for r in s["replicas"].as_array().into_iter().flatten() {
                    let l = r["lag_lsn"].as_u64().unwrap_or(0);
                    max_lsn = max_lsn.max(l);
                    sum_lsn += l;
                    max_s = max_s.max(r["lag_seconds"].as_f64().unwrap_or(0.0));
                }
            }
            samples += 1;
        }
    }
    let posted = i - entries;
    println!(
        "steady load: {posted} posts in 5 s ({:.0}/s asked {rate}/s): lag mean {:.1} LSNs/shard, max {max_lsn} LSNs, max {:.1} ms",
        posted as f64 / 5.0,
        sum_lsn as f64 / (samples.max(1) * primary.shard_count() as u64) as f64,
        max_s * 1000.0
    );
    rt.block_on(async {
        r_repl.shutdown().await;
        p_repl.shutdown().await;
    });
}
