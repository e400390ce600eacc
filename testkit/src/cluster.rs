//! Replication test helpers: a cluster CA in a temp dir, nodes with their own data dir,
//! certificate and fixed replication port, and status and digest polling.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::node::Chirp;

/// A cluster CA and the nodes' directories, all under one temp dir.
pub struct Cluster {
    /// Holds everything; removed on drop.
    pub tmp: tempfile::TempDir,
}

/// How to start one node again and again on the same data and replication port.
#[derive(Clone)]
pub struct NodeSpec {
    /// Its name.
    pub name: String,
    /// Its data dir.
    pub data: PathBuf,
    /// Its certificate dir.
    pub tls: PathBuf,
    /// Its replication (QUIC) address.
    pub repl: String,
    /// The address it listens on.
    pub ip: std::net::IpAddr,
}

/// A UDP port free right now on loopback.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free udp port")
}

impl Default for Cluster {
    fn default() -> Cluster {
        Cluster::new()
    }
}

impl Cluster {
    /// A new cluster CA. With `CHIRP_TEST_KEEP` set, the directory (data dirs and logs of
    /// every node) is kept after the test, and its path printed.
    pub fn new() -> Cluster {
        let mut tmp = tempfile::tempdir().expect("tempdir");
        if std::env::var_os("CHIRP_TEST_KEEP").is_some() {
            tmp.disable_cleanup(true);
            eprintln!("CHIRP_TEST_KEEP: keeping {}", tmp.path().display());
        }
        chirp_replication::tls::create_cluster_ca(&tmp.path().join("ca")).expect("cluster CA");
        Cluster { tmp }
    }

    /// A node named `name` with a certificate and a free replication port.
    pub fn node(&self, name: &str) -> NodeSpec {
        self.node_at(name, std::net::IpAddr::from([127, 0, 0, 1]))
    }

    /// A node listening (public API, admin and replication) on `ip`, which its certificate
    /// names: one of the 127.0.0.x addresses, so network faults can be made between nodes
    /// with drop rules on addresses.
    pub fn node_at(&self, name: &str, ip: std::net::IpAddr) -> NodeSpec {
        let root = self.tmp.path().join(name);
        let tls = root.join("tls");
        chirp_replication::tls::issue_node_cert(&self.tmp.path().join("ca"), name, &[ip], &tls)
            .expect("node certificate");
        NodeSpec {
            name: name.to_string(),
            data: root.join("data"),
            tls,
            repl: format!("{ip}:{}", free_udp_port()),
            ip,
        }
    }
}

impl NodeSpec {
    /// Starts the node as primary, with extra flags.
    pub fn primary(&self, extra: &[&str]) -> Chirp {
        self.start(None, extra)
    }

    /// Starts the node as a replica of `primary`.
    pub fn replica_of(&self, primary: &NodeSpec, extra: &[&str]) -> Chirp {
        self.start(Some(primary), extra)
    }

    fn start(&self, primary: Option<&NodeSpec>, extra: &[&str]) -> Chirp {
        let tls = self.tls.to_string_lossy().into_owned();
        let listen = format!("{}:0", self.ip);
        let mut args = vec![
            "--node-name",
            &self.name,
            "--repl-listen",
            &self.repl,
            "--tls-dir",
            &tls,
            "--listen",
            &listen,
            "--admin-listen",
            &listen,
        ];
        if let Some(p) = primary {
            args.push("--replica-of");
            args.push(&p.repl);
        }
        args.extend_from_slice(extra);
        std::fs::create_dir_all(self.data.parent().expect("parent")).expect("node dir");
        Chirp::start(&self.data, &args)
    }
}

/// The node's replication status.
pub fn status(node: &Chirp) -> Value {
    let (s, v) = node.call("GET", "/replication", None, None);
    assert_eq!(s, 200, "{v}");
    v
}

/// Per-shard digests of every column family but meta; the oplog from `oplog_from`. A shard
/// that is swapping in a checkpoint answers 503 for that moment: asked again shortly.
pub fn digests(node: &Chirp, oplog_from: u64) -> Value {
    let path = format!("/digest?oplog_from={oplog_from}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, v) = node.admin_call("GET", &path, None);
        if s == 503 && v["type"] == "/problems/unavailable" && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        assert_eq!(s, 200, "{v}");
        return v;
    }
}

/// Waits until every replica holds exactly what the primary holds (every column family
/// but meta; the oplog from the primary's oldest retained entry), within `timeout`.
pub fn wait_identical(primary: &Chirp, replicas: &[&Chirp], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let st = status(primary);
        let from = st["shards"]
            .as_array()
            .expect("shards")
            .iter()
            .map(|s| s["oldest_lsn"].as_u64().unwrap_or(0))
            .max()
            .unwrap_or(0);
        let want = digests(primary, from);
        let got: Vec<Value> = replicas.iter().map(|r| digests(r, from)).collect();
        if got.iter().all(|g| *g == want) {
            return;
        }
        if Instant::now() > deadline {
            let mut diffs = Vec::new();
            for (r, g) in replicas.iter().zip(&got) {
                for (i, shard) in want["shards"].as_array().into_iter().flatten().enumerate() {
                    for (cf, d) in shard.as_object().into_iter().flatten() {
                        if g["shards"][i][cf] != *d {
                            diffs.push(format!("{} shard {i} {cf}", r.base));
                        }
                    }
                }
                eprintln!("replica {} status {}", r.base, status(r));
            }
            panic!("replicas did not converge: {diffs:?}\nprimary status {st}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
