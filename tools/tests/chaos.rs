//! A Jepsen-style checker for the cluster: real etcd, three real nodes, clients posting
//! through random nodes and logging what they were told, and a seeded nemesis injecting one
//! or two faults at a time:
//!
//! - a node killed (SIGKILL, restarted later) or paused (SIGSTOP, resumed later), past its
//!   lease;
//! - etcd killed (and restarted on its data) or paused;
//! - a copy of a shard moved to the node holding none of it (`chirpctl shard move`, as the
//!   primary or a replica), which the controller carries out while the next faults come;
//! - network partitions, when the test can have a network namespace of its own (root, `ip`
//!   and `nft`; see `chirp_testkit::net`): a node cut from etcd, from the other nodes (its
//!   replicas and its primaries), or from both. Clients still reach a cut-off node: the
//!   nastiest case, an isolated old primary that clients keep writing to.
//!
//! After healing it checks that every acknowledged post reads back through every node,
//! every shard's copies are identical, no acknowledged post is among the entries deposed
//! primaries set aside, and only one node acknowledged writes in any (shard, epoch) (nodes
//! name the (shard, epoch) of what they acknowledged in `X-Chirp-Acked`).
//!
//! `CHIRP_CHAOS_SECS` (12 by default) and `CHIRP_CHAOS_SEED` (2: a node cut from etcd and
//! a move in the default run) choose the run.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use chirp_testkit::net::Net;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use support::*;

/// What a chaos client saw of one post.
#[derive(Debug, Clone)]
enum Outcome {
    /// 201: acknowledged, with the tweet's id, the node that answered and the (shard,
    /// epoch) pairs it acknowledged.
    Ok {
        id: String,
        node: String,
        acked: Vec<(u64, u64)>,
    },
    /// An error status: refused, or (503 not-replicated) indeterminate.
    Failed(u16),
    /// No answer (a killed or paused node, a partition): indeterminate.
    Unknown,
}

/// The shards of the cluster under test.
const SHARDS: u64 = 4;

/// One fault the nemesis injects, and heals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Kill(usize),
    Pause(usize),
    KillEtcd,
    PauseEtcd,
    /// Node from etcd.
    CutFromEtcd(usize),
    /// Node from the other nodes.
    CutFromPeers(usize),
    /// Node from etcd and the other nodes.
    Isolate(usize),
    /// A move of a copy of this shard to the node holding none (`chirpctl shard move`), as
    /// the primary or a replica: carried out by the controller while the next faults come.
    Move {
        shard: u64,
        primary: bool,
    },
}

impl Fault {
    fn kind(self) -> &'static str {
        match self {
            Fault::Kill(_) => "kill -9",
            Fault::Pause(_) => "SIGSTOP",
            Fault::KillEtcd => "etcd kill -9",
            Fault::PauseEtcd => "etcd SIGSTOP",
            Fault::CutFromEtcd(_) => "node cut from etcd",
            Fault::CutFromPeers(_) => "node cut from its peers",
            Fault::Isolate(_) => "node cut from everything",
            Fault::Move { .. } => "shard move",
        }
    }

    fn node(self) -> Option<usize> {
        match self {
            Fault::Kill(v)
            | Fault::Pause(v)
            | Fault::CutFromEtcd(v)
            | Fault::CutFromPeers(v)
            | Fault::Isolate(v) => Some(v),
            // Not on a node, and never with an etcd fault (chirpctl needs etcd to start it).
            Fault::KillEtcd | Fault::PauseEtcd | Fault::Move { .. } => None,
        }
    }

    fn random(rng: &mut StdRng, network: bool) -> Fault {
        let v = rng.gen_range(0..3);
        let kinds = if network { 8 } else { 5 };
        match rng.gen_range(0..kinds) {
            0 => Fault::Kill(v),
            1 => Fault::Pause(v),
            2 => Fault::KillEtcd,
            3 => Fault::PauseEtcd,
            4 => Fault::Move {
                shard: rng.gen_range(0..SHARDS),
                primary: rng.gen_bool(0.5),
            },
            5 => Fault::CutFromEtcd(v),
            6 => Fault::CutFromPeers(v),
            _ => Fault::Isolate(v),
        }
    }
}

/// The cluster under test and what the nemesis needs to hurt and heal it.
struct Harness {
    three: Mutex<Three>,
    /// Each node's public URL while it runs (None while killed): where clients post.
    urls: RwLock<Vec<Option<String>>>,
    net: Mutex<Option<Net>>,
}

impl Harness {
    fn signal_node(&self, v: usize, signal: i32) {
        let pid = self.three.lock().expect("three").nodes[v].pid() as i32;
        // SAFETY: kill(2) on a child process this test started (reaped by Chirp's drop).
        unsafe { libc::kill(pid, signal) };
    }

    fn signal_etcd(&self, signal: i32) {
        let pid = self.three.lock().expect("three").etcd.pid() as i32;
        // SAFETY: kill(2) on a child process this test started.
        unsafe { libc::kill(pid, signal) };
    }

    /// Cuts each pair apart; a node and its own address of etcd are cut by dropping
    /// everything to and from that address (the node reaches etcd from 127.0.0.1).
    fn cut(&self, pairs: &[(IpAddr, IpAddr)]) {
        let mut net = self.net.lock().expect("net");
        let net = net.as_mut().expect("network faults need the namespace");
        for &(a, b) in pairs {
            if (0..3).any(|v| b == etcd_ip(v)) {
                net.cut_off(b).expect("nft rule");
            } else {
                net.cut(a, b).expect("nft rule");
            }
        }
    }

    fn peers_of(v: usize) -> Vec<(IpAddr, IpAddr)> {
        (0..3)
            .filter(|&w| w != v)
            .map(|w| (node_ip(v), node_ip(w)))
            .collect()
    }

    fn inject(&self, fault: Fault) {
        match fault {
            Fault::Kill(v) => {
                self.urls.write().expect("urls")[v] = None;
                self.three.lock().expect("three").nodes[v].kill();
            }
            Fault::Pause(v) => self.signal_node(v, libc::SIGSTOP),
            Fault::KillEtcd => self.three.lock().expect("three").etcd.kill(),
            Fault::PauseEtcd => self.signal_etcd(libc::SIGSTOP),
            Fault::CutFromEtcd(v) => self.cut(&[(node_ip(v), etcd_ip(v))]),
            Fault::CutFromPeers(v) => self.cut(&Harness::peers_of(v)),
            Fault::Isolate(v) => {
                let mut pairs = Harness::peers_of(v);
                pairs.push((node_ip(v), etcd_ip(v)));
                self.cut(&pairs);
            }
            Fault::Move { shard, primary } => self.start_move(shard, primary),
        }
    }

    /// Starts moving a copy of `shard` to the one node holding none of it; a shard already
    /// moving (every node holds some copy) is left alone.
    fn start_move(&self, shard: u64, primary: bool) {
        let url = self.three.lock().expect("three").etcd.url.clone();
        let map = status_at(&url, "chaos");
        let sh = &map["shards"][shard as usize];
        let holding: Vec<String> =
            std::iter::once(sh["primary"].as_str().unwrap_or("").to_string())
                .chain(names(&sh["replicas"]))
                .chain(names(&sh["learners"]))
                .collect();
        let Some(to) = (1..=3)
            .map(|i| format!("n{i}"))
            .find(|n| !holding.contains(n))
        else {
            eprintln!("chaos: shard {shard} is moving already");
            return;
        };
        let role = if primary { "primary" } else { "replica" };
        let out = ctl(&[
            "shard",
            "move",
            &shard.to_string(),
            "--to",
            &to,
            "--role",
            role,
            "--etcd",
            &url,
            "--cluster",
            "chaos",
        ]);
        eprintln!(
            "chaos: shard move {shard} to {to} as {role}: {}",
            text(&out).trim()
        );
    }

    fn heal(&self, fault: Fault) {
        match fault {
            Fault::Kill(v) => {
                let again = {
                    let three = self.three.lock().expect("three");
                    start_via(&three.specs[v], &three.etcd_urls[v], "chaos")
                };
                self.urls.write().expect("urls")[v] = Some(again.base.clone());
                self.three.lock().expect("three").nodes[v] = again;
            }
            Fault::Pause(v) => self.signal_node(v, libc::SIGCONT),
            Fault::KillEtcd => self.three.lock().expect("three").etcd.restart(),
            Fault::PauseEtcd => self.signal_etcd(libc::SIGCONT),
            Fault::CutFromEtcd(_) | Fault::CutFromPeers(_) | Fault::Isolate(_) => {
                if let Some(net) = self.net.lock().expect("net").as_mut() {
                    net.heal().expect("nft flush");
                }
            }
            // The controller finishes it (or undoes it) once every node is back.
            Fault::Move { .. } => {}
        }
    }
}

/// Sets its flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// One client: posts as random users through random running nodes until told to stop,
/// logging each post's text and outcome.
fn client(
    c: u64,
    seed: u64,
    users: &[String],
    harness: &Harness,
    log: &Mutex<Vec<(String, Outcome)>>,
    stop: &AtomicBool,
) {
    let mut rng = StdRng::seed_from_u64(seed * 100 + c);
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let mut k = 0;
    while !stop.load(Ordering::Relaxed) {
        let live: Vec<String> = harness
            .urls
            .read()
            .expect("urls")
            .iter()
            .flatten()
            .cloned()
            .collect();
        let url = &live[rng.gen_range(0..live.len())];
        let token = &users[rng.gen_range(0..users.len())];
        let text = format!("client {c} post {k}");
        k += 1;
        let outcome = match agent
            .post(&format!("{url}/tweet"))
            .set("Authorization", &format!("Bearer {token}"))
            .send_json(serde_json::json!({ "text": text }))
        {
            Ok(r) if r.status() == 201 => {
                let node = r.header("x-chirp-node").unwrap_or_default().to_string();
                let acked = r
                    .header("x-chirp-acked")
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|pair| {
                        let (s, e) = pair.split_once('@')?;
                        Some((s.parse().ok()?, e.parse().ok()?))
                    })
                    .collect();
                let v: Value = r.into_json().expect("JSON");
                let id = v["id"].as_str().expect("id").to_string();
                Outcome::Ok { id, node, acked }
            }
            Ok(r) => Outcome::Failed(r.status()),
            Err(ureq::Error::Status(s, _)) => Outcome::Failed(s),
            Err(_) => Outcome::Unknown,
        };
        log.lock().expect("log").push((text, outcome));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until every node is up and registered and every shard's sync set is whole.
fn wait_healed(three: &Three) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(&three.etcd, "chaos");
        let alive: Vec<String> = s["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .filter(|n| n["alive"] == true)
            .filter_map(|n| n["name"].as_str().map(str::to_string))
            .collect();
        let whole = s["shards"].as_array().expect("shards").iter().all(|sh| {
            let sync = names(&sh["sync"]);
            !sync.is_empty() && sync.iter().all(|n| alive.contains(n)) && sh["moving"].is_null()
        });
        if alive.len() == 3 && whole {
            return;
        }
        assert!(Instant::now() < deadline, "the cluster did not heal: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The tweet ids in a node's divergent dumps (`divergent-<shard>-<epoch>.log`: entries a
/// deposed primary had that the new primary lacked).
fn divergent_tweets(data: &std::path::Path) -> Vec<String> {
    let mut ids = Vec::new();
    let Ok(dir) = std::fs::read_dir(data) else {
        return ids;
    };
    for file in dir.flatten() {
        let name = file.file_name().to_string_lossy().into_owned();
        if !name.starts_with("divergent-") {
            continue;
        }
        let bytes = std::fs::read(file.path()).expect("read a dump");
        let mut at = 0;
        while at + 12 <= bytes.len() {
            let len =
                u32::from_be_bytes(bytes[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
            let raw = &bytes[at + 12..at + 12 + len];
            at += 12 + len;
            let entry = chirp_engine::batch::Entry::decode(raw).expect("a dumped entry");
            for op in entry.ops {
                if op.cf_name() == chirp_engine::keys::CF_TWEETS {
                    if let Some(id) = chirp_engine::keys::decode_id(&op.key) {
                        ids.push(id.to_string());
                    }
                }
            }
        }
    }
    ids
}

#[test]
fn chaos_faults_lose_no_acknowledged_write() {
    let secs: u64 = std::env::var("CHIRP_CHAOS_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let seed: u64 = std::env::var("CHIRP_CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    // Everything this test starts lives in its own network namespace when it can have one.
    let net = match Net::isolate() {
        Ok(net) => Some(net),
        Err(why) => {
            eprintln!("chaos: no network faults in this run: {why}");
            None
        }
    };
    let network = net.is_some();
    // Two copies of each shard on three nodes: a move always has a node to go to.
    let three = three_on("chaos", SHARDS as u32, 2, network);
    let users: Vec<String> = (0..6)
        .map(|i| three.nodes[i % 3].user(&format!("chaos{i}")).1)
        .collect();
    let harness = Harness {
        urls: RwLock::new(three.nodes.iter().map(|n| Some(n.base.clone())).collect()),
        three: Mutex::new(three),
        net: Mutex::new(net),
    };
    let log: Mutex<Vec<(String, Outcome)>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let mut faults: BTreeMap<&str, usize> = BTreeMap::new();
    let mut rng = StdRng::seed_from_u64(seed);

    std::thread::scope(|scope| {
        // The clients stop when the nemesis does, panics included.
        let _stop = StopOnDrop(&stop);
        for c in 0..4u64 {
            let (users, harness, log, stop) = (&users, &harness, &log, &stop);
            scope.spawn(move || client(c, seed, users, harness, log, stop));
        }
        // The nemesis: one fault, sometimes two at once (on different nodes, at most one
        // of them on etcd), each held past the lease (2 s), then healed.
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(rng.gen_range(1000..2500)));
            let first = Fault::random(&mut rng, network);
            let mut now = vec![first];
            if rng.gen_bool(0.3) {
                let second = Fault::random(&mut rng, network);
                let same_node = second.node().is_some() && second.node() == first.node();
                let both_etcd = second.node().is_none() && first.node().is_none();
                let both_cuts = matches!(
                    (first, second),
                    (
                        Fault::CutFromEtcd(_) | Fault::CutFromPeers(_) | Fault::Isolate(_),
                        Fault::CutFromEtcd(_) | Fault::CutFromPeers(_) | Fault::Isolate(_)
                    )
                );
                // Healing a cut flushes every rule, so two cuts would heal as one: fine,
                // but keep the pairs simple to read in the summary.
                if !same_node && !both_etcd && !both_cuts {
                    now.push(second);
                }
            }
            if now.len() == 2 {
                *faults.entry("two at once").or_default() += 1;
            }
            for &f in &now {
                *faults.entry(f.kind()).or_default() += 1;
                eprintln!("chaos: {f:?}");
                harness.inject(f);
            }
            std::thread::sleep(Duration::from_millis(rng.gen_range(2500..4500)));
            // etcd first: a node restarted while etcd is down refuses to start.
            now.sort_by_key(|f| f.node().is_some());
            for &f in &now {
                harness.heal(f);
            }
            // Let the cluster settle a moment before the next fault.
            std::thread::sleep(Duration::from_millis(1500));
        }
        stop.store(true, Ordering::Relaxed);
    });

    let three = harness.three.into_inner().expect("three");
    wait_healed(&three);
    let nodes = &three.nodes;
    let log = log.into_inner().expect("log");
    // id -> (text, the node that acknowledged it and the (shard, epoch) it named).
    let acked: BTreeMap<String, (String, String)> = log
        .iter()
        .filter_map(|(text, o)| match o {
            Outcome::Ok { id, node, acked } => {
                Some((id.clone(), (text.clone(), format!("{node} at {acked:?}"))))
            }
            _ => None,
        })
        .collect();
    let mut failed: BTreeMap<u16, usize> = BTreeMap::new();
    for (_, o) in &log {
        if let Outcome::Failed(status) = o {
            *failed.entry(*status).or_default() += 1;
        }
    }
    let unknown = log
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Unknown))
        .count();

    // One acknowledging node per (shard, epoch).
    let mut acknowledgers: BTreeMap<(u64, u64), BTreeSet<String>> = BTreeMap::new();
    for (text, o) in &log {
        if let Outcome::Ok { node, acked, id } = o {
            assert!(
                !node.is_empty() && !acked.is_empty(),
                "post {id} ({text}) was acknowledged without naming its node and epoch"
            );
            for &pair in acked {
                acknowledgers.entry(pair).or_default().insert(node.clone());
            }
        }
    }
    for ((shard, epoch), by) in &acknowledgers {
        assert_eq!(
            by.len(),
            1,
            "shard {shard} at epoch {epoch} was acknowledged by {by:?}"
        );
    }
    // Every acknowledged post, through every node.
    for chirp in nodes {
        for (id, (text, by)) in &acked {
            let (s, t) = chirp.call("GET", &format!("/tweets/{id}"), None, None);
            assert_eq!(
                s, 200,
                "acknowledged {id} ({text}, by {by}) missing through {}: {t}",
                chirp.base
            );
            assert_eq!(t["text"], text.as_str());
        }
    }
    // Every shard's copies are identical.
    let map = status(&three.etcd, "chaos");
    for sh in map["shards"].as_array().expect("shards") {
        let id = sh["id"].as_u64().expect("id");
        let holders: Vec<usize> = std::iter::once(sh["primary"].clone())
            .chain(sh["replicas"].as_array().expect("replicas").iter().cloned())
            .map(|n| index_of(&n))
            .collect();
        nodes[0].eventually(&format!("shard {id}'s copies to be identical"), || {
            identical(nodes, &holders, id)
        });
    }
    // What deposed primaries set aside was never acknowledged.
    let mut set_aside = 0;
    for spec in &three.specs {
        for id in divergent_tweets(&spec.data) {
            set_aside += 1;
            assert!(
                !acked.contains_key(&id),
                "acknowledged tweet {id} was set aside as divergent"
            );
        }
    }
    eprintln!(
        "chaos (seed {seed}, {secs} s, network faults {network}): {} posts: {} acknowledged \
         in {} (shard, epoch) pairs, one node each; refused by status {failed:?}, {unknown} \
         without an answer; faults {faults:?}; {set_aside} unacknowledged tweets set aside; \
         lost 0",
        log.len(),
        acked.len(),
        acknowledgers.len(),
    );
    assert!(!acked.is_empty());
}

/// A node cut off from etcd (still reachable by clients and by the other nodes) stops
/// serving the shards it leads once its lease may have lapsed; the controller, finding it
/// answering but without its lease, fails those shards over, so writes to them go through
/// again through the other nodes. Healed, and through an etcd pause after, it registers
/// again and follows the new primaries, its copies identical to theirs.
#[test]
fn a_node_cut_from_etcd_is_failed_over_and_comes_back() {
    let mut net = match Net::isolate() {
        Ok(net) => net,
        Err(why) => {
            eprintln!("skipping: {why}");
            return;
        }
    };
    let Three {
        etcd, nodes, _ca, ..
    } = three_on("cut", 2, 3, true);
    let led = |map: &Value| -> Vec<u64> {
        map["shards"]
            .as_array()
            .expect("shards")
            .iter()
            .filter(|s| s["primary"] == "n1")
            .map(|s| s["id"].as_u64().expect("id"))
            .collect()
    };
    let before = led(&status(&etcd, "cut"));
    assert!(!before.is_empty(), "n1 leads no shard");
    // A user of a shard n1 leads, with a tweet.
    let (token, tweet) = (0..)
        .map(|i: usize| nodes[i % 3].user(&format!("cut{i}")))
        .find_map(|(id, token)| {
            let shard = chirp_engine::ids::shard_of_id(id.parse().expect("id")) as u64;
            before
                .contains(&shard)
                .then(|| (token.clone(), nodes[1].tweet(&token, "before the cut")))
        })
        .expect("a user on n1's shard");

    net.cut_off(etcd_ip(0)).expect("cut");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !led(&status(&etcd, "cut")).is_empty() {
        assert!(
            Instant::now() < deadline,
            "n1's shards were not failed over"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let refused = nodes[0].send("GET", &format!("/tweets/{tweet}"), None, &[], None);
    assert_eq!(
        refused.status,
        503,
        "n1 cut from etcd answered: {}",
        refused.json()
    );
    let retried = std::sync::atomic::AtomicUsize::new(0);
    let after = post_retrying(&nodes[1], &token, "after the failover", &retried);

    net.heal().expect("heal");
    // SAFETY: kill(2) on a child process this test started.
    unsafe { libc::kill(etcd.pid() as i32, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_millis(3000));
    // SAFETY: as above.
    unsafe { libc::kill(etcd.pid() as i32, libc::SIGCONT) };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = status(&etcd, "cut");
        if (0..3).all(|i| s["nodes"][i]["alive"] == true) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a node did not register again: {s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let map = status(&etcd, "cut");
    for id in before {
        let p = index_of(&map["shards"][id as usize]["primary"]);
        nodes[0].eventually("n1's copy to equal the new primary's", || {
            identical(&nodes, &[0, p], id)
        });
    }
    for t in [&tweet, &after] {
        nodes[0].eventually("n1 to serve again", || {
            nodes[0]
                .try_call("GET", &format!("/tweets/{t}"), None, None)
                .is_ok_and(|(s, _)| s == 200)
        });
    }
}
