//! The cluster commands of `chirpctl` end to end: a real etcd (`chirp_testkit::etcd`), real
//! `chirp serve --etcd` nodes, and the real `chirpctl` creating the cluster, adding the
//! nodes and reading the map back.
//!
//! Nodes run with `--lease-ttl-secs 2` so a killed one drops out of the map within seconds.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chirp_testkit::cluster::Cluster;
use chirp_testkit::etcd::Etcd;
use chirp_testkit::node::{data_dir, Chirp};
use serde_json::Value;
use support::*;

#[test]
fn create_add_status_and_a_node_that_dies() {
    let etcd = Etcd::start();

    // No cluster yet: status and node add say so.
    let out = ctl(&["cluster", "status", "--etcd", &etcd.url, "--cluster", "c1"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("does not exist"), "{}", text(&out));

    let created = ok(&["cluster", "create", "--etcd", &etcd.url, "--name", "c1"]);
    assert!(created.contains("64 shards, rf 3, min_sync 1"), "{created}");
    let again = ctl(&[
        "cluster", "create", "--etcd", &etcd.url, "--name", "c1", "--shards", "8",
    ]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again).contains("already exists"), "{}", text(&again));

    let ca = Cluster::new();
    let nodes: Vec<Chirp> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| node(&ca, &etcd, "c1", n))
        .collect();

    // Running but not added: alive, no state, no shards.
    let s = status(&etcd, "c1");
    assert_eq!(s["shards"], serde_json::json!([]));
    assert_eq!(s["nodes"].as_array().expect("nodes").len(), 3);
    assert!(s["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .all(|n| n["alive"] == true && n["state"].is_null()));

    let added = ok(&[
        "node",
        "add",
        "n1",
        "n2",
        "n3",
        "--etcd",
        &etcd.url,
        "--cluster",
        "c1",
    ]);
    assert!(added.contains("64 shards"), "{added}");

    // The settings can come from the environment too.
    let out = Command::new(env!("CARGO_BIN_EXE_chirpctl"))
        .args(["cluster", "status", "--json"])
        .env("CHIRP_ETCD", &etcd.url)
        .env("CHIRP_CLUSTER", "c1")
        .output()
        .expect("run chirpctl");
    assert!(out.status.success(), "{}", text(&out));
    let s: Value = serde_json::from_slice(&out.stdout).expect("JSON");

    // Exactly the documented shape.
    let keys: BTreeSet<&str> = s
        .as_object()
        .expect("object")
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["revision", "controller", "nodes", "shards"])
    );
    assert!(s["revision"].as_u64().expect("revision") > 0);
    // The controller is elected among the members (within a second of their joining).
    assert!(
        s["controller"].is_null()
            || ["n1", "n2", "n3"].contains(&s["controller"].as_str().unwrap_or_default()),
        "{}",
        s["controller"]
    );
    let listed = s["nodes"].as_array().expect("nodes");
    assert_eq!(listed.len(), 3);
    for (n, chirp) in listed.iter().zip(&nodes) {
        let keys: BTreeSet<&str> = n
            .as_object()
            .expect("node")
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(keys, BTreeSet::from(["name", "api", "alive", "state"]));
        assert_eq!(n["alive"], true);
        assert_eq!(n["state"], "active");
        assert_eq!(
            Some(n["api"].as_str().expect("api")),
            chirp.base.strip_prefix("http://"),
            "the api address the node registered"
        );
    }
    let shards = s["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 64);
    let mut primaries: BTreeMap<String, usize> = BTreeMap::new();
    let mut copies: BTreeMap<String, usize> = BTreeMap::new();
    for (i, sh) in shards.iter().enumerate() {
        let keys: BTreeSet<&str> = sh
            .as_object()
            .expect("shard")
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from(["id", "epoch", "primary", "replicas", "sync", "learners", "moving"])
        );
        assert!(sh["moving"].is_null(), "{sh}");
        assert_eq!(sh["id"], i as u64);
        assert_eq!(sh["epoch"], 1);
        let primary = sh["primary"].as_str().expect("primary").to_string();
        let replicas = names(&sh["replicas"]);
        let on: BTreeSet<&String> = std::iter::once(&primary).chain(&replicas).collect();
        assert_eq!(on.len(), 3, "three copies on distinct nodes: {sh}");
        assert_eq!(names(&sh["sync"]), replicas[..1].to_vec());
        assert!(names(&sh["learners"]).is_empty());
        *primaries.entry(primary.clone()).or_default() += 1;
        for n in on {
            *copies.entry(n.clone()).or_default() += 1;
        }
    }
    let mut spread: Vec<usize> = primaries.values().copied().collect();
    spread.sort();
    assert_eq!(spread, vec![21, 21, 22]);
    assert!(copies.values().all(|&c| c == 64), "{copies:?}");

    // The table for people.
    let table = ok(&["cluster", "status", "--etcd", &etcd.url, "--cluster", "c1"]);
    assert!(table.contains("cluster c1 at revision"), "{table}");
    assert!(table.contains("controller: "), "{table}");
    let elected = || {
        status(&etcd, "c1")["controller"]
            .as_str()
            .map(str::to_string)
    };
    nodes[0].eventually("a controller to be elected", || elected().is_some());
    let table = ok(&["cluster", "status", "--etcd", &etcd.url, "--cluster", "c1"]);
    assert!(
        table.contains(&format!("controller: {}", elected().expect("elected"))),
        "{table}"
    );

    // A node added later is a member holding nothing.
    let _n4 = node(&ca, &etcd, "c1", "n4");
    let later = ok(&["node", "add", "n4", "--etcd", &etcd.url, "--cluster", "c1"]);
    assert!(later.contains("no shards"), "{later}");
    let s = status(&etcd, "c1");
    assert_eq!(s["nodes"].as_array().expect("nodes").len(), 4);
    assert_eq!(s["shards"], serde_json::json!(shards));

    // A node that is not running cannot be added.
    let ghost = ctl(&[
        "node",
        "add",
        "ghost",
        "--etcd",
        &etcd.url,
        "--cluster",
        "c1",
    ]);
    assert!(!ghost.status.success());
    assert!(text(&ghost).contains("not running"), "{}", text(&ghost));

    // Kill n3: it stays a member but is no longer alive once its lease runs out.
    let mut nodes = nodes;
    let mut n3 = nodes.pop().expect("n3");
    n3.kill();
    let killed = Instant::now();
    let deadline = killed + Duration::from_secs(15);
    loop {
        let s = status(&etcd, "c1");
        let n = s["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| n["name"] == "n3")
            .expect("n3 is still a member")
            .clone();
        if n["alive"] == false {
            assert_eq!(n["state"], "active");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "n3 still alive 15 s after it was killed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The others are still alive.
    let s = status(&etcd, "c1");
    let alive: Vec<&str> = s["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["alive"] == true)
        .map(|n| n["name"].as_str().expect("name"))
        .collect();
    assert_eq!(alive, vec!["n1", "n2", "n4"]);
}

#[test]
fn a_node_of_a_missing_cluster_refuses_to_start() {
    let etcd = Etcd::start();
    let (_tmp, dir) = data_dir();
    let out = Command::new(chirp_testkit::bin::chirp())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(&dir)
        .args([
            "--etcd",
            &etcd.url,
            "--cluster",
            "nope",
            "--node-name",
            "n1",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run chirp");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cluster \"nope\" does not exist"), "{err}");
    assert!(!dir.exists(), "the data dir is not touched");
}

#[test]
fn a_stopped_node_leaves_at_once() {
    let etcd = Etcd::start();
    ok(&[
        "cluster", "create", "--etcd", &etcd.url, "--name", "c2", "--shards", "4", "--rf", "1",
    ]);
    let ca = Cluster::new();
    let mut n1 = node(&ca, &etcd, "c2", "n1");
    ok(&["node", "add", "n1", "--etcd", &etcd.url, "--cluster", "c2"]);
    let s = status(&etcd, "c2");
    assert_eq!(s["nodes"][0]["alive"], true);
    assert!(s["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .all(|sh| sh["primary"] == "n1" && sh["replicas"] == serde_json::json!([])));
    // SIGTERM: the node revokes its lease on the way out, no TTL to wait for.
    assert!(n1.terminate().success());
    let s = status(&etcd, "c2");
    assert_eq!(s["nodes"][0]["alive"], false);
}

/// The shards a node holds and those it is the primary of, from its `/replication` report.
#[test]
fn every_node_serves_the_whole_service() {
    let Three {
        etcd, nodes, _ca, ..
    } = three("c3", 8, 2);

    // Users signed up at different nodes; each logs in and acts through any node.
    let (alice, alice_token) = nodes[0].user("alice");
    let (bob, bob_token) = nodes[1].user("bob");
    let (s, session) = nodes[2].call(
        "POST",
        "/sessions",
        None,
        Some(serde_json::json!({"handle": "bob", "password": "correct horse"})),
    );
    assert_eq!(s, 200, "log-in through another node: {session}");
    let post = nodes[2].send(
        "POST",
        "/tweet",
        Some(&bob_token),
        &[("content-type", "application/json")],
        Some(br#"{"text":"hello from wherever #everywhere"}"#),
    );
    assert_eq!(post.status, 201, "{}", String::from_utf8_lossy(&post.body));
    assert!(
        post.header("x-chirp-node").is_some(),
        "every answer names its node"
    );
    let tweet = post.json()["id"].as_str().expect("id").to_string();
    let (s, v) = nodes[1].call(
        "POST",
        &format!("/{alice}/follow/{bob}"),
        Some(&alice_token),
        None,
    );
    assert!(s == 200 || s == 204, "follow through a third node: {s} {v}");

    // Whatever node is asked, the service is the same.
    for chirp in &nodes {
        let (s, t) = chirp.call("GET", &format!("/tweets/{tweet}"), None, None);
        assert_eq!(s, 200, "{t}");
        let (s, p) = chirp.call("GET", "/@bob/profile", None, None);
        assert_eq!((s, p["followers_count"].as_u64()), (200, Some(1)), "{p}");
        let (s, f) = chirp.call("GET", &format!("/{bob}/followers"), None, None);
        assert_eq!(s, 200, "{f}");
        assert_eq!(f["users"][0]["id"], alice.as_str(), "{f}");
        let (s, found) = chirp.call("GET", "/search/tags/everywhere", None, None);
        assert_eq!(s, 200, "{found}");
        assert_eq!(found["tweets"][0]["id"], tweet.as_str(), "{found}");
        chirp.eventually("bob's tweet in alice's feed", || {
            let (s, feed) = chirp.call("GET", "/feed", Some(&alice_token), None);
            s == 200 && feed["tweets"][0]["id"] == tweet.as_str()
        });
    }

    // The status table gives each shard's lag, as its primary reports it: nothing is
    // outstanding once the replicas have caught up.
    nodes[0].eventually("every shard's lag to be 0", || {
        let table = ok(&["cluster", "status", "--etcd", &etcd.url, "--cluster", "c3"]);
        let rows: Vec<&str> = table
            .lines()
            .skip_while(|l| !l.starts_with("shard"))
            .collect();
        rows.first().is_some_and(|h| h.trim_end().ends_with("lag"))
            && rows.len() == 9
            && rows[1..].iter().all(|r| r.trim_end().ends_with(" 0"))
    });
}

/// `scripts/cluster-demo 2`: prints the etcd URL, the cluster and one line per serving node,
/// and stops everything on SIGTERM.
#[test]
fn the_cluster_demo_starts_and_stops() {
    use std::io::{BufRead, BufReader};
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_chirpctl"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    // The demo runs the same binaries as every other test (fails on a stale chirp).
    let _ = chirp_testkit::bin::chirp();
    let demo = tempfile::tempdir().expect("tempdir");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/cluster-demo");
    let mut child = Command::new(script)
        .arg("2")
        .env("CHIRP_BIN", &bin_dir)
        .env("CHIRP_DEMO_DIR", demo.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run scripts/cluster-demo");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut read = Vec::new();
    while read.len() < 4 {
        match lines.next() {
            Some(Ok(line)) => read.push(line),
            other => panic!("the demo stopped early after {read:?}: {other:?}"),
        }
    }
    assert!(read[0].starts_with("etcd http://127.0.0.1:"), "{read:?}");
    assert_eq!(read[1], "cluster demo");
    let urls: Vec<String> = read[2..]
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let prefix = format!("node n{} ", i + 1);
            line.strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("{line:?}"))
                .to_string()
        })
        .collect();
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    for url in &urls {
        let resp = agent.get(&format!("{url}/health")).call().expect("health");
        assert!(resp.header("x-chirp-node").is_some(), "{url}");
    }
    let etcd = read[0].trim_start_matches("etcd ").to_string();
    let s: Value = serde_json::from_str(&ok(&[
        "cluster",
        "status",
        "--etcd",
        &etcd,
        "--cluster",
        "demo",
        "--json",
    ]))
    .expect("status");
    assert_eq!(s["shards"].as_array().map(Vec::len), Some(64));

    // SIGTERM stops the nodes and etcd with it.
    // SAFETY: kill(2) on a child we spawned and have not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the demo did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    for url in &urls {
        assert!(
            agent.get(&format!("{url}/health")).call().is_err(),
            "{url} still answers"
        );
    }
}

/// `chirpctl shard failover` while clients post through every node, with the target
/// replica paused across the request so it must catch up before it takes over: every
/// acknowledged tweet reads back through every node, the map names the new primary at the
/// next epoch, and the old primary, killed and restarted, serves the shard as a replica
/// whose digests equal the new primary's.
#[test]
fn a_planned_failover_under_writes_loses_nothing() {
    let Three {
        etcd,
        specs,
        mut nodes,
        _ca,
        ..
    } = three("c5", 4, 2);
    let users: Vec<(String, String)> = (0..8)
        .map(|i| nodes[i % 3].user(&format!("writer{i}")))
        .collect();

    // Each user's first tweet tells its shard (tweet ids carry the shard bits); writer0's
    // shard is handed over.
    let shard_of = |id: &str| chirp_engine::ids::shard_of_id(id.parse().expect("id")) as u64;
    let mut acked: Vec<(String, String, Instant)> = Vec::new();
    let mut user_shard = Vec::new();
    for (i, (_, token)) in users.iter().enumerate() {
        let text = format!("hello from writer{i}");
        let id = nodes[i % 3].tweet(token, &text);
        user_shard.push(shard_of(&id));
        acked.push((id, text, Instant::now()));
    }
    let shard = user_shard[0];
    let map = status(&etcd, "c5");
    let before = map["shards"][shard as usize].clone();
    assert_eq!(before["epoch"], 1, "{before}");
    let from = before["primary"].as_str().expect("primary").to_string();
    let to = names(&before["replicas"])[0].clone();
    let index = |name: &str| name[1..].parse::<usize>().expect("n<i>") - 1;
    let (p, t) = (index(&from), index(&to));
    // The writers keep to users and entry nodes the paused target does not hold up.
    let writers: Vec<&(String, String)> = users
        .iter()
        .zip(&user_shard)
        .filter(|(_, &s)| map["shards"][s as usize]["primary"] != to.as_str())
        .map(|(u, _)| u)
        .collect();
    let entries: Vec<&Chirp> = (0..3).filter(|&i| i != t).map(|i| &nodes[i]).collect();

    let stop = AtomicBool::new(false);
    let retried = AtomicUsize::new(0);
    let acked = Mutex::new(acked);
    let slowest: Mutex<Vec<Duration>> = Mutex::new(Vec::new());
    let handed_over = std::thread::scope(|scope| {
        for w in 0..4 {
            let (entries, writers, stop, retried, acked, slowest) =
                (&entries, &writers, &stop, &retried, &acked, &slowest);
            scope.spawn(move || {
                let mut k = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (_, token) = writers[(w + k) % writers.len()];
                    let text = format!("writer {w} post {k}");
                    let sent = Instant::now();
                    let id = post_retrying(entries[(w + k) % 2], token, &text, retried);
                    let took = sent.elapsed();
                    let mut acked = acked.lock().expect("acked");
                    acked.push((id, text, Instant::now()));
                    slowest.lock().expect("slowest").push(took);
                    k += 1;
                    // Each user stays well under the per-user write limit.
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
        std::thread::sleep(Duration::from_millis(700));
        // The target falls behind: the primary must wait for it before handing over.
        // SAFETY: kill(2) on a child process this test started.
        unsafe { libc::kill(nodes[t].pid() as i32, libc::SIGSTOP) };
        std::thread::sleep(Duration::from_millis(300));
        let failover = scope.spawn(|| {
            ctl(&[
                "shard",
                "failover",
                &shard.to_string(),
                "--to",
                &to,
                "--etcd",
                &etcd.url,
                "--cluster",
                "c5",
            ])
        });
        std::thread::sleep(Duration::from_millis(1000));
        // SAFETY: as above.
        unsafe { libc::kill(nodes[t].pid() as i32, libc::SIGCONT) };
        let out = failover.join().expect("chirpctl");
        let done = Instant::now();
        std::thread::sleep(Duration::from_millis(700));
        stop.store(true, Ordering::Relaxed);
        (out, done)
    });
    let (out, done) = handed_over;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "shard {shard} handed over from {from} to {to} at epoch 2"
        )),
        "{}",
        text(&out)
    );
    let after = status(&etcd, "c5")["shards"][shard as usize].clone();
    assert_eq!(after["epoch"], 2, "{after}");
    assert_eq!(after["primary"], to.as_str(), "{after}");
    assert_eq!(names(&after["replicas"]), vec![from.clone()], "{after}");
    assert_eq!(names(&after["sync"]), vec![from.clone()], "{after}");

    // Posts to the shard were taken before and after the handover, and nothing
    // acknowledged is missing, whichever node is asked.
    let acked = acked.into_inner().expect("acked");
    let on_shard =
        |id: &str| chirp_engine::ids::shard_of_id(id.parse().expect("id")) as u64 == shard;
    let later = acked
        .iter()
        .filter(|(id, _, at)| on_shard(id) && *at > done)
        .count();
    assert!(later > 0, "no post to shard {shard} after the handover");
    let mut took = slowest.into_inner().expect("slowest");
    took.sort();
    eprintln!(
        "{} posts acknowledged ({} on shard {shard}, {later} of them after the handover); \
         post latency median {:?}, max {:?} (the write pause); clients saw {} 421/503",
        acked.len(),
        acked.iter().filter(|(id, _, _)| on_shard(id)).count(),
        took[took.len() / 2],
        took[took.len() - 1],
        retried.load(Ordering::Relaxed)
    );
    // The nodes hold and re-send requests while the shard changes hands: clients see a
    // pause, never a 421 or a 503.
    assert_eq!(
        retried.load(Ordering::Relaxed),
        0,
        "client-visible 421/503 during the handover"
    );
    for chirp in &nodes {
        for (id, text, _) in &acked {
            let (s, tweet) = chirp.call("GET", &format!("/tweets/{id}"), None, None);
            assert_eq!(
                s, 200,
                "acknowledged tweet {id} through {}: {tweet}",
                chirp.base
            );
            assert_eq!(tweet["text"], text.as_str());
        }
    }
    let report = shard_report(&nodes[t], shard).expect("the new primary holds the shard");
    assert_eq!(report["role"], "primary", "{report}");
    nodes[p].eventually("the old primary to follow the new one", || {
        shard_report(&nodes[p], shard)
            .is_some_and(|r| r["role"] == "replica" && r["following"] == specs[t].repl.as_str())
    });

    // The old primary, killed and started again, comes back as what the map says.
    nodes[p].kill();
    nodes[p] = start(&specs[p], &etcd, "c5");
    nodes[p].eventually("the restarted node to follow the shard", || {
        shard_report(&nodes[p], shard)
            .is_some_and(|r| r["role"] == "replica" && r["following"] == specs[t].repl.as_str())
    });
    let last = post_retrying(&nodes[p], &users[0].1, "after the restart", &retried);
    let (s, tweet) = nodes[p].call("GET", &format!("/tweets/{last}"), None, None);
    assert_eq!(
        (s, tweet["text"].as_str()),
        (200, Some("after the restart"))
    );
    let identical = || identical(&nodes, &[p, t], shard);
    nodes[p].eventually("the copies of the shard to be identical", identical);

    // Reads go to the primary; `Chirp-Read: stale` reads the node's own copy. With the
    // primary paused, only the stale read answers.
    let fresh = nodes[t].tweet(&users[0].1, "read me from a copy");
    nodes[p].eventually("the copy to hold it", identical);
    // SAFETY: kill(2) on a child process this test started.
    unsafe { libc::kill(nodes[t].pid() as i32, libc::SIGSTOP) };
    let path = format!("/tweets/{fresh}");
    let at_primary = nodes[p].send("GET", &path, None, &[], None);
    let stale = nodes[p].send("GET", &path, None, &[("chirp-read", "stale")], None);
    // SAFETY: as above.
    unsafe { libc::kill(nodes[t].pid() as i32, libc::SIGCONT) };
    assert_eq!(
        at_primary.status, 503,
        "a read at a paused primary cannot answer"
    );
    assert_eq!(
        stale.status,
        200,
        "{}",
        String::from_utf8_lossy(&stale.body)
    );
    assert_eq!(stale.json()["text"], "read me from a copy");
    let bad = nodes[p].send("GET", &path, None, &[("chirp-read", "whenever")], None);
    assert_eq!(bad.status, 422, "{}", String::from_utf8_lossy(&bad.body));
    assert!(String::from_utf8_lossy(&bad.body).contains("Chirp-Read"));
}

/// A write is acknowledged only once every member of its shard's sync set has it. With the
/// sync member paused, a post waits until the primary has replaced that member with the
/// replica that holds every write, and that replica has the post when it is acknowledged;
/// with no replica to take the place, the post is refused (503), never acknowledged with
/// fewer copies than `min_sync`.
#[test]
fn writes_wait_for_the_sync_set() {
    let Three {
        etcd, nodes, _ca, ..
    } = three("c6", 2, 3);
    let (_, token) = nodes[0].user("patient");
    let first = nodes[0].tweet(&token, "before the pause");
    let shard = chirp_engine::ids::shard_of_id(first.parse().expect("id"));
    let map = status(&etcd, "c6");
    let a = &map["shards"][shard];
    let index = index_of;
    let p = index(&a["primary"]);
    let y = index(&a["sync"][0]);
    let z = (0..3)
        .find(|&i| i != p && i != y)
        .expect("the other replica");
    let pause = |i: usize, sig: i32| {
        // SAFETY: kill(2) on a child process this test started.
        unsafe { libc::kill(nodes[i].pid() as i32, sig) };
    };

    // The sync member is paused: the post waits until z, holding every write, replaces it.
    pause(y, libc::SIGSTOP);
    let post = nodes[p].send(
        "POST",
        "/tweet",
        Some(&token),
        &[("content-type", "application/json")],
        Some(br#"{"text":"while the sync replica sleeps"}"#),
    );
    let sync_then = status(&etcd, "c6")["shards"][shard]["sync"].clone();
    pause(y, libc::SIGCONT);
    assert_eq!(post.status, 201, "{}", String::from_utf8_lossy(&post.body));
    let id = post.json()["id"].as_str().expect("id").to_string();
    assert_eq!(
        names(&sync_then),
        vec![format!("n{}", z + 1)],
        "acknowledged while the paused replica was still the sync set"
    );
    let on_z = nodes[z].send(
        "GET",
        &format!("/tweets/{id}"),
        None,
        &[("chirp-read", "stale")],
        None,
    );
    assert_eq!(
        on_z.status, 200,
        "the sync member holds an acknowledged post"
    );

    // Both replicas paused: nobody can take the sync member's place, the post is refused.
    pause(z, libc::SIGSTOP);
    pause(y, libc::SIGSTOP);
    let refused = nodes[p].send(
        "POST",
        "/tweet",
        Some(&token),
        &[("content-type", "application/json")],
        Some(br#"{"text":"no replica awake"}"#),
    );
    pause(z, libc::SIGCONT);
    pause(y, libc::SIGCONT);
    assert_eq!(
        refused.status,
        503,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    assert!(String::from_utf8_lossy(&refused.body).contains("not-replicated"));
    let s = status(&etcd, "c6")["shards"][shard]["sync"].clone();
    assert_eq!(
        names(&s).len(),
        1,
        "the sync set never shrank below min_sync: {s}"
    );
    nodes[p].eventually("writes to go through again", || {
        nodes[p]
            .try_call(
                "POST",
                "/tweet",
                Some(&token),
                Some(serde_json::json!({"text": "awake again"})),
            )
            .is_ok_and(|(s, _)| s == 201)
    });
}

/// Automatic failover: the primary of some shards is killed (SIGKILL) while clients post
/// through the other nodes. Within 15 s posts to its shards succeed again through any node,
/// every acknowledged post reads back, the map names a member of each shard's old sync set
/// primary at the next epoch, and the killed node, started again, serves those shards as a
/// replica whose digests equal the new primaries'.
#[test]
fn a_killed_primary_fails_over_and_loses_nothing() {
    let Three {
        etcd,
        specs,
        mut nodes,
        _ca,
        ..
    } = three("c7", 4, 3);
    let users: Vec<(String, String)> = (0..6)
        .map(|i| nodes[i % 3].user(&format!("survivor{i}")))
        .collect();
    let shard_of = |id: &str| chirp_engine::ids::shard_of_id(id.parse().expect("id")) as u64;
    let mut acked: Vec<(String, String, Instant)> = Vec::new();
    let mut user_shard = Vec::new();
    for (i, (_, token)) in users.iter().enumerate() {
        let text = format!("first from survivor{i}");
        let id = nodes[i % 3].tweet(token, &text);
        user_shard.push(shard_of(&id));
        acked.push((id, text, Instant::now()));
    }
    // An image on a tweet of survivor0, whose shard's primary is killed below: its file must
    // be on the new primary (files travel with their shard).
    let png = picture(7);
    let up = nodes[0].send(
        "POST",
        "/media",
        Some(&users[0].1),
        &[("Content-Type", "image/png")],
        Some(&png),
    );
    assert_eq!(up.status, 201, "{}", up.json());
    let media_id = up.json()["id"].as_str().expect("id").to_string();
    let (s, t) = nodes[1].call(
        "POST",
        "/tweet",
        Some(&users[0].1),
        Some(serde_json::json!({"text": "a picture before the kill", "media": [media_id]})),
    );
    assert_eq!(s, 201, "{t}");
    let image = nodes[2].send("GET", &format!("/media/{media_id}"), None, &[], None);
    assert_eq!(image.status, 200);
    let before = status(&etcd, "c7");
    let victim_name = before["shards"][user_shard[0] as usize]["primary"]
        .as_str()
        .expect("primary")
        .to_string();
    let v = victim_name[1..].parse::<usize>().expect("n<i>") - 1;
    let victim_shards: Vec<(u64, Vec<String>)> = before["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .filter(|s| s["primary"] == victim_name.as_str())
        .map(|s| (s["id"].as_u64().expect("id"), names(&s["sync"])))
        .collect();
    let entries: Vec<usize> = (0..3).filter(|&i| i != v).collect();

    let stop = AtomicBool::new(false);
    let retried = AtomicUsize::new(0);
    let acked = Mutex::new(acked);
    let (killed_at, back_at) = std::thread::scope(|scope| {
        for w in 0..4 {
            let (nodes, entries, users, stop, retried, acked) =
                (&nodes, &entries, &users, &stop, &retried, &acked);
            scope.spawn(move || {
                let mut k = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (_, token) = &users[(w + k) % users.len()];
                    let text = format!("writer {w} post {k}");
                    let via = &nodes[entries[(w + k) % entries.len()]];
                    let id = post_retrying(via, token, &text, retried);
                    acked
                        .lock()
                        .expect("acked")
                        .push((id, text, Instant::now()));
                    k += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
        std::thread::sleep(Duration::from_millis(800));
        // SAFETY: kill(2) on a child process this test started (reaped below).
        unsafe { libc::kill(nodes[v].pid() as i32, libc::SIGKILL) };
        let killed_at = Instant::now();
        // A post to the dead primary's shard goes through again (through a survivor).
        let via = &nodes[entries[0]];
        post_retrying(via, &users[0].1, "back after the failover", &retried);
        let back_at = Instant::now();
        std::thread::sleep(Duration::from_millis(1000));
        stop.store(true, Ordering::Relaxed);
        (killed_at, back_at)
    });
    nodes[v].kill();
    let took = back_at.duration_since(killed_at);
    eprintln!(
        "failover: kill to the first post accepted on the dead primary's shard {took:?}; \
         clients retried {} 421/503",
        retried.load(Ordering::Relaxed)
    );
    assert!(
        took < Duration::from_secs(15),
        "writes came back after {took:?}"
    );

    // The map: each of the victim's shards is led by a member of its old sync set.
    let after = status(&etcd, "c7");
    assert!(after["controller"].is_string(), "{after}");
    for (shard, sync) in &victim_shards {
        let s = &after["shards"][*shard as usize];
        assert_eq!(s["epoch"], 2, "{s}");
        let primary = s["primary"].as_str().expect("primary").to_string();
        assert!(
            sync.contains(&primary),
            "shard {shard} went to {primary}, not one of {sync:?}"
        );
        assert!(names(&s["replicas"]).contains(&victim_name), "{s}");
    }

    // Nothing acknowledged is missing, through any live node.
    let acked = acked.into_inner().expect("acked");
    for i in &entries {
        for (id, text, _) in &acked {
            let (s, tweet) = nodes[*i].call("GET", &format!("/tweets/{id}"), None, None);
            assert_eq!(
                s,
                200,
                "acknowledged tweet {id} through n{}: {tweet}",
                i + 1
            );
            assert_eq!(tweet["text"], text.as_str());
        }
    }
    eprintln!("{} acknowledged posts all read back", acked.len());
    let image_everywhere = |nodes: &[Chirp], at: &[usize]| {
        for i in at {
            let r = nodes[*i].send("GET", &format!("/media/{media_id}"), None, &[], None);
            assert_eq!(r.status, 200, "the image through n{}", i + 1);
            assert!(r.body == image.body, "the image's bytes through n{}", i + 1);
        }
    };
    image_everywhere(&nodes, &entries);

    // The killed node comes back as a replica of its old shards, identical to the primaries.
    nodes[v] = start(&specs[v], &etcd, "c7");
    for (shard, _) in &victim_shards {
        let s = &after["shards"][*shard as usize];
        let p = index_of(&s["primary"]);
        nodes[v].eventually("the old primary to follow the new one", || {
            shard_report(&nodes[v], *shard)
                .is_some_and(|r| r["role"] == "replica" && r["following"] == specs[p].repl.as_str())
        });
        nodes[v].eventually("its copy to equal the new primary's", || {
            identical(&nodes, &[v, p], *shard)
        });
    }
    image_everywhere(&nodes, &[0, 1, 2]);
}

/// Leases bound stale reads: with etcd paused, no node can renew its registration, so
/// once a primary's lease may have lapsed (TTL less a margin, on its own clock) it stops
/// answering for its shards (503, reads from its hot cache included), while a read that
/// asks for stale data still gets its replica copy. With etcd back, each node registers
/// again, applies a map read since, and serves again.
#[test]
fn a_primary_whose_lease_lapsed_stops_serving() {
    let Three {
        etcd, nodes, _ca, ..
    } = three("c10", 2, 3);
    let (_, token) = nodes[0].user("leased");
    let id = nodes[0].tweet(&token, "read me while the lease holds");
    let shard = chirp_engine::ids::shard_of_id(id.parse().expect("id"));
    let p = index_of(&status(&etcd, "c10")["shards"][shard]["primary"]);
    let r = (p + 1) % 3;
    let path = format!("/tweets/{id}");
    let (s, _) = nodes[p].call("GET", &path, None, None);
    assert_eq!(s, 200, "read through the primary (now in its hot cache)");

    // SAFETY: kill(2) on a child process this test started.
    unsafe { libc::kill(etcd.pid() as i32, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_millis(2500));
    let refused = nodes[p].send("GET", &path, None, &[], None);
    let stale = nodes[r].send("GET", &path, None, &[("Chirp-Read", "stale")], None);
    let by_user = nodes[p].send("GET", "/feed", Some(&token), &[], None);
    // SAFETY: as above.
    unsafe { libc::kill(etcd.pid() as i32, libc::SIGCONT) };
    assert_eq!(
        refused.status,
        503,
        "a primary past its lease answered: {}",
        refused.json()
    );
    assert!(
        refused.json()["detail"]
            .as_str()
            .is_some_and(|d| d.contains("lease")),
        "{}",
        refused.json()
    );
    assert_eq!(by_user.status, 503, "{}", by_user.json());
    assert_eq!(
        stale.status,
        200,
        "a stale read of a replica copy: {}",
        stale.json()
    );
    assert_eq!(stale.json()["id"], id.as_str());

    nodes[p].eventually("the primary to serve again once it holds a lease", || {
        nodes[p]
            .try_call("GET", &path, None, None)
            .is_ok_and(|(s, _)| s == 200)
    });
}

/// A primary paused (SIGSTOP) past its lease is failed over; resumed (SIGCONT) with posts
/// already waiting at its door, it acknowledges none of them at its replaced epoch: each
/// post it answers 201 to was taken by the new primary, which holds it.
#[test]
fn a_paused_primary_acknowledges_nothing_after_its_epoch_was_replaced() {
    let Three {
        etcd, nodes, _ca, ..
    } = three("c8", 2, 3);
    let (_, token) = nodes[0].user("sleeper");
    let first = nodes[0].tweet(&token, "before the pause");
    let shard = chirp_engine::ids::shard_of_id(first.parse().expect("id"));
    let old = status(&etcd, "c8")["shards"][shard].clone();
    let p = index_of(&old["primary"]);
    let signal = |sig: i32| {
        // SAFETY: kill(2) on a child process this test started.
        unsafe { libc::kill(nodes[p].pid() as i32, sig) };
    };

    signal(libc::SIGSTOP);
    let deadline = Instant::now() + Duration::from_secs(20);
    let new = loop {
        let s = status(&etcd, "c8")["shards"][shard].clone();
        if s["epoch"].as_u64() > old["epoch"].as_u64() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no failover of the paused primary"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let n = index_of(&new["primary"]);
    // Posts sent straight to the paused primary wait in its socket; then it resumes.
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let posts: Vec<_> = (0..4)
            .map(|i| {
                let (nodes, token) = (&nodes, &token);
                scope.spawn(move || {
                    nodes[p]
                        .try_call(
                            "POST",
                            "/tweet",
                            Some(token),
                            Some(serde_json::json!({ "text": format!("at the door {i}") })),
                        )
                        .unwrap_or((0, Value::Null))
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        signal(libc::SIGCONT);
        posts.into_iter().map(|t| t.join().expect("post")).collect()
    });
    for (status, body) in &answers {
        if *status != 201 {
            continue;
        }
        let id = body["id"].as_str().expect("id");
        let (s, t) = nodes[n].call("GET", &format!("/tweets/{id}"), None, None);
        assert_eq!(
            s, 200,
            "tweet {id} was acknowledged but the new primary lacks it: {t}"
        );
    }
    eprintln!(
        "answers of the resumed primary: {:?}",
        answers.iter().map(|(s, _)| *s).collect::<Vec<_>>()
    );
    // It then serves the shard as a replica of the new primary.
    nodes[p].eventually("the resumed node to follow the new primary", || {
        shard_report(&nodes[p], shard as u64).is_some_and(|r| r["role"] == "replica")
    });
}

/// Failover time, kill after kill: the primary of one user's shard is killed, the time until
/// that user's next post is accepted (through another node) is taken, and the node is started
/// again and rejoins before the next kill. `CHIRP_FAILOVER_KILLS` kills (2 by default); the
/// median and the maximum are printed. Each must be under 15 s.
#[test]
fn failover_time_kill_after_kill() {
    let kills: usize = std::env::var("CHIRP_FAILOVER_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let Three {
        etcd,
        specs,
        mut nodes,
        _ca,
        ..
    } = three("c9", 4, 3);
    let (_, token) = nodes[0].user("phoenix");
    let first = nodes[0].tweet(&token, "round 0");
    let shard = chirp_engine::ids::shard_of_id(first.parse().expect("id"));
    let retried = AtomicUsize::new(0);
    let mut times = Vec::new();
    for round in 1..=kills {
        let map = status(&etcd, "c9");
        let victim = index_of(&map["shards"][shard]["primary"]);
        let via = (victim + 1) % 3;
        nodes[victim].kill();
        let killed = Instant::now();
        post_retrying(&nodes[via], &token, &format!("round {round}"), &retried);
        times.push(killed.elapsed());
        // Back as a replica, and every shard's sync set whole and alive, before the next kill.
        nodes[victim] = start(&specs[victim], &etcd, "c9");
        nodes[via].eventually("the cluster to heal", || {
            let s = status(&etcd, "c9");
            let alive: Vec<&str> = s["nodes"]
                .as_array()
                .expect("nodes")
                .iter()
                .filter(|n| n["alive"] == true)
                .filter_map(|n| n["name"].as_str())
                .collect();
            alive.len() == 3
                && s["shards"].as_array().expect("shards").iter().all(|sh| {
                    let sync = names(&sh["sync"]);
                    !sync.is_empty() && sync.iter().all(|n| alive.contains(&n.as_str()))
                })
        });
    }
    times.sort();
    let median = times[times.len() / 2];
    let max = times[times.len() - 1];
    eprintln!(
        "failover over {kills} kills: median {median:?}, max {max:?} (lease TTL {TTL} s); all {times:?}"
    );
    assert!(max < Duration::from_secs(15), "{times:?}");
}

/// The image files under a node's `media/` (by name, that is by digest).
fn media_files(data: &std::path::Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Ok(top) = std::fs::read_dir(data.join("media")) else {
        return out;
    };
    for a in top.flatten() {
        if a.file_name() == "tmp" {
            continue;
        }
        for b in std::fs::read_dir(a.path()).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(b.path()).into_iter().flatten().flatten() {
                out.insert(f.file_name().to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// `chirpctl shard add-replica`: a node without a copy of a shard takes one as a learner,
/// catches up from the primary (image files included) while posts go on, and the
/// controller makes it a replica; its copy is identical to the primary's.
#[test]
fn an_added_replica_catches_up_and_joins() {
    let Three {
        etcd,
        specs,
        nodes,
        _ca,
        ..
    } = three("c11", 2, 2);
    let (user, token) = nodes[0].user("grown");
    let shard = chirp_engine::ids::shard_of_id(user.parse().expect("id")) as u64;
    let up = nodes[1].send(
        "POST",
        "/media",
        Some(&token),
        &[("Content-Type", "image/png")],
        Some(&picture(9)),
    );
    assert_eq!(up.status, 201, "{}", up.json());
    let media = up.json()["id"].as_str().expect("id").to_string();
    let (s, t) = nodes[2].call(
        "POST",
        "/tweet",
        Some(&token),
        Some(serde_json::json!({"text": "before the new copy", "media": [media]})),
    );
    assert_eq!(s, 201, "{t}");
    let map = status(&etcd, "c11");
    let sh = &map["shards"][shard as usize];
    let p = index_of(&sh["primary"]);
    let holders: BTreeSet<String> = std::iter::once(sh["primary"].as_str().expect("primary"))
        .chain(
            sh["replicas"]
                .as_array()
                .expect("replicas")
                .iter()
                .filter_map(Value::as_str),
        )
        .map(str::to_string)
        .collect();
    let new = (0..3)
        .find(|i| !holders.contains(&format!("n{}", i + 1)))
        .expect("a node without a copy");
    let name = format!("n{}", new + 1);
    let shard_arg = shard.to_string();
    let add = [
        "shard",
        "add-replica",
        &shard_arg,
        "--node",
        &name,
        "--etcd",
        &etcd.url,
        "--cluster",
        "c11",
    ];
    let out = ok(&add);
    assert!(out.contains("learner"), "{out}");
    // Writes go on while it catches up.
    for i in 0..20 {
        nodes[i % 3].tweet(&token, &format!("while {name} catches up {i}"));
    }
    nodes[0].eventually(&format!("{name} to be a replica of shard {shard}"), || {
        let sh = &status(&etcd, "c11")["shards"][shard as usize];
        names(&sh["replicas"]).contains(&name) && names(&sh["learners"]).is_empty()
    });
    nodes[0].eventually("the new copy to equal the primary's", || {
        identical(&nodes, &[p, new], shard)
    });
    assert_eq!(
        media_files(&specs[new].data),
        media_files(&specs[p].data),
        "the new copy holds the image files"
    );
    // Taken twice: refused.
    let again = ctl(&add);
    assert!(!again.status.success(), "{}", text(&again));
}
