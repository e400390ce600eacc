//! Helpers shared by the cluster test files: `chirpctl` runs, three-node clusters, map
//! and replication reports, copy comparisons.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chirp_testkit::cluster::{digests, Cluster, NodeSpec};
use chirp_testkit::etcd::Etcd;
use chirp_testkit::node::Chirp;
use serde_json::Value;

pub const TTL: &str = "2";

/// Runs `chirpctl` with these arguments, with no cluster settings from the environment.
pub fn ctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chirpctl"))
        .args(args)
        .env_remove("CHIRP_ETCD")
        .env_remove("CHIRP_CLUSTER")
        .output()
        .expect("run chirpctl")
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn ok(args: &[&str]) -> String {
    let out = ctl(args);
    assert!(out.status.success(), "chirpctl {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn status(etcd: &Etcd, cluster: &str) -> Value {
    status_at(&etcd.url, cluster)
}

/// [`status`] from etcd at `url`.
pub fn status_at(url: &str, cluster: &str) -> Value {
    let out = ok(&[
        "cluster",
        "status",
        "--etcd",
        url,
        "--cluster",
        cluster,
        "--json",
    ]);
    serde_json::from_str(&out).expect("status JSON")
}

/// A node of `cluster` named `name`, with its own data dir, a certificate from the test's CA
/// and a replication port: cluster nodes reach each other's shards over it.
pub fn node(ca: &Cluster, etcd: &Etcd, cluster: &str, name: &str) -> Chirp {
    start(&ca.node(name), etcd, cluster)
}

/// Starts (or starts again, on the same data dir and replication port) a node of `cluster`.
pub fn start(spec: &NodeSpec, etcd: &Etcd, cluster: &str) -> Chirp {
    start_via(spec, &etcd.url, cluster)
}

/// [`start`], reaching etcd at `etcd_url`.
pub fn start_via(spec: &NodeSpec, etcd_url: &str, cluster: &str) -> Chirp {
    spec.primary(&[
        "--etcd",
        etcd_url,
        "--cluster",
        cluster,
        "--lease-ttl-secs",
        TTL,
    ])
}

pub fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|n| n.as_str().expect("name").to_string())
        .collect()
}

pub fn parts(node: &Chirp) -> (BTreeSet<u64>, BTreeSet<u64>) {
    let (s, v) = node.call("GET", "/replication", None, None);
    assert_eq!(s, 200, "{v}");
    let shards = v["shards"].as_array().cloned().unwrap_or_default();
    let held = shards.iter().filter_map(|s| s["shard"].as_u64()).collect();
    let primary = shards
        .iter()
        .filter(|s| s["role"] == "primary")
        .filter_map(|s| s["shard"].as_u64())
        .collect();
    (held, primary)
}

/// Waits until node `n<i+1>` of `nodes` holds exactly the shards the map gives it, and is
/// the primary of exactly those it names it for.
pub fn wait_for_parts(etcd: &Etcd, cluster: &str, nodes: &[Chirp]) {
    let map = status(etcd, cluster);
    for (i, chirp) in nodes.iter().enumerate() {
        let me = format!("n{}", i + 1);
        let mut held = BTreeSet::new();
        let mut primary = BTreeSet::new();
        for shard in map["shards"].as_array().expect("shards") {
            let id = shard["id"].as_u64().expect("id");
            if shard["primary"] == me.as_str() {
                primary.insert(id);
                held.insert(id);
            }
            if names(&shard["replicas"]).contains(&me) {
                held.insert(id);
            }
        }
        chirp.eventually(&format!("{me} to take its parts"), || {
            parts(chirp) == (held.clone(), primary.clone())
        });
    }
}

/// Three nodes n1, n2, n3 of a new cluster, added, each holding the parts the map gives it.
/// Fields drop in order: the nodes before etcd. Bind `_ca` when destructuring: it holds the
/// nodes' certificates and data dirs, which `..` would delete at once.
pub struct Three {
    pub nodes: Vec<Chirp>,
    pub specs: Vec<NodeSpec>,
    pub _ca: Cluster,
    pub etcd: Etcd,
    /// Where each node reaches etcd.
    pub etcd_urls: Vec<String>,
}

pub fn three(cluster: &str, shards: u32, rf: u32) -> Three {
    three_on(cluster, shards, rf, false)
}

/// Node `n<i+1>`'s own address in [`three_on`] with addresses.
pub fn node_ip(i: usize) -> std::net::IpAddr {
    std::net::IpAddr::from([127, 0, 0, 11 + i as u8])
}

/// The address node `n<i+1>` reaches etcd at in [`three_on`] with addresses.
pub fn etcd_ip(i: usize) -> std::net::IpAddr {
    std::net::IpAddr::from([127, 0, 0, 101 + i as u8])
}

/// [`three`]; with `own_addresses`, node `n<i+1>` listens on [`node_ip`] and reaches etcd
/// at [`etcd_ip`] (etcd serves on both), so that `chirp_testkit::net` drop rules can cut a
/// node from etcd or from another node (the test runs in its own network namespace).
pub fn three_on(cluster: &str, shards: u32, rf: u32, own_addresses: bool) -> Three {
    let etcd = if own_addresses {
        Etcd::start_on(&(0..3).map(etcd_ip).collect::<Vec<_>>())
    } else {
        Etcd::start()
    };
    let (shards, rf) = (shards.to_string(), rf.to_string());
    ok(&[
        "cluster", "create", "--etcd", &etcd.url, "--name", cluster, "--shards", &shards, "--rf",
        &rf,
    ]);
    let ca = Cluster::new();
    let (specs, etcd_urls): (Vec<NodeSpec>, Vec<String>) = ["n1", "n2", "n3"]
        .iter()
        .enumerate()
        .map(|(i, n)| {
            if own_addresses {
                (ca.node_at(n, node_ip(i)), etcd.url_at(etcd_ip(i)))
            } else {
                (ca.node(n), etcd.url.clone())
            }
        })
        .unzip();
    let nodes: Vec<Chirp> = specs
        .iter()
        .zip(&etcd_urls)
        .map(|(s, url)| start_via(s, url, cluster))
        .collect();
    ok(&[
        "node",
        "add",
        "n1",
        "n2",
        "n3",
        "--etcd",
        &etcd.url,
        "--cluster",
        cluster,
    ]);
    wait_for_parts(&etcd, cluster, &nodes);
    Three {
        nodes,
        specs,
        _ca: ca,
        etcd,
        etcd_urls,
    }
}

/// The index in `nodes` of the node a map names ("n2" is 1).
pub fn index_of(name: &Value) -> usize {
    name.as_str().expect("a node name")[1..]
        .parse::<usize>()
        .expect("n<i>")
        - 1
}

/// Whether the copies of `shard` on `holders` are identical (the oplog from the newest
/// oldest entry any of them keeps).
pub fn identical(nodes: &[Chirp], holders: &[usize], shard: u64) -> bool {
    let from = holders
        .iter()
        .map(|&h| {
            shard_report(&nodes[h], shard).map_or(0, |r| r["oldest_lsn"].as_u64().unwrap_or(0))
        })
        .max()
        .unwrap_or(0);
    let all: Vec<Value> = holders
        .iter()
        .map(|&h| digests(&nodes[h], from)["shards"][shard as usize].clone())
        .collect();
    !all[0].is_null() && all.iter().all(|d| *d == all[0])
}

/// One shard's entry in a node's `/replication` report.
pub fn shard_report(node: &Chirp, shard: u64) -> Option<Value> {
    let (s, v) = node.call("GET", "/replication", None, None);
    assert_eq!(s, 200, "{v}");
    v["shards"]
        .as_array()?
        .iter()
        .find(|r| r["shard"] == shard)
        .cloned()
}

/// Posts `text` as `token` through `via`, retrying a 421 or 503 (a shard changing hands)
/// for up to 20 s; the new tweet's id.
pub fn post_retrying(via: &Chirp, token: &str, text: &str, retried: &AtomicUsize) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match via.try_call(
            "POST",
            "/tweet",
            Some(token),
            Some(serde_json::json!({ "text": text })),
        ) {
            Ok((201, v)) => return v["id"].as_str().expect("id").to_string(),
            Ok((status @ (421 | 503), v)) if Instant::now() < deadline => {
                eprintln!("post {text:?} through {}: {status} {v}; retrying", via.base);
                retried.fetch_add(1, Ordering::Relaxed);
            }
            other => panic!("posting {text:?} through {}: {other:?}", via.base),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A small PNG, different per `seed`.
pub fn picture(seed: u8) -> Vec<u8> {
    let img =
        image::RgbImage::from_fn(32, 20, |x, y| image::Rgb([x as u8 * 7, y as u8 * 11, seed]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encode");
    out.into_inner()
}
