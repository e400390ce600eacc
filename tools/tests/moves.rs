//! Copies of shards taken out and moved between nodes, against real processes: etcd, chirp
//! nodes on loopback, and `chirpctl` as an operator runs it.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chirp_testkit::node::Chirp;
use serde_json::Value;
use support::*;

/// The copies of `shard` in a status report: the primary, then the replicas.
fn holders(map: &Value, shard: u64) -> Vec<String> {
    let sh = &map["shards"][shard as usize];
    std::iter::once(sh["primary"].as_str().expect("primary").to_string())
        .chain(names(&sh["replicas"]))
        .collect()
}

/// Whether `node`'s `/replication` report lists `shard` (it holds a copy).
fn holds(node: &Chirp, shard: u64) -> bool {
    shard_report(node, shard).is_some()
}

/// The names of the entries of `data/dropped`.
fn dropped(data: &std::path::Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(data.join("dropped"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// [`three`] and a fourth node, n4, added (holding nothing yet).
fn four(cluster: &str, shards: u32, rf: u32) -> Three {
    let mut t = three(cluster, shards, rf);
    let spec = t._ca.node("n4");
    t.nodes.push(start(&spec, &t.etcd, cluster));
    t.specs.push(spec);
    ok(&[&["node", "add", "n4"][..], &etcd_args(&t.etcd.url, cluster)].concat());
    t
}

/// `chirpctl shard move S --to N --role primary --wait --timeout-secs T` with the
/// control-plane arguments `e`.
fn try_move_primary(shard: &str, to: &str, secs: u32, e: &[&str]) -> std::process::Output {
    let secs = secs.to_string();
    ctl(&[
        &[
            "shard", "move", shard, "--to", to, "--role", "primary", "--wait",
        ][..],
        &["--timeout-secs", &secs][..],
        e,
    ]
    .concat())
}

/// [`try_move_primary`], which must succeed; its output.
fn move_primary(shard: &str, to: &str, secs: u32, e: &[&str]) -> String {
    let out = try_move_primary(shard, to, secs, e);
    assert!(out.status.success(), "{}", text(&out));
    text(&out)
}

fn etcd_args<'a>(etcd: &'a str, cluster: &'a str) -> [&'a str; 4] {
    ["--etcd", etcd, "--cluster", cluster]
}

/// `chirpctl shard remove-replica` takes a replica's copy out. The node it belonged to was
/// down meanwhile: when it comes back it moves the files of the copy it no longer holds to
/// `dropped/` and serves the whole service as before. The primary's copy, or one that would
/// leave fewer than min_sync replicas, is refused.
#[test]
fn a_removed_copy_is_moved_aside() {
    let Three {
        etcd,
        specs,
        mut nodes,
        _ca,
        ..
    } = three("mv1", 2, 3);
    let (_, token) = nodes[0].user("mover");
    for i in 0..10 {
        nodes[i % 3].tweet(&token, &format!("before the removal {i}"));
    }
    let shard = 0u64;
    let map = status(&etcd, "mv1");
    let copies = holders(&map, shard);
    let primary = copies[0].clone();
    let gone = copies[2].clone();
    let g = index_of(&Value::from(gone.as_str()));
    let s = shard.to_string();
    let e = etcd_args(&etcd.url, "mv1");

    let refused = ctl(&[&["shard", "remove-replica", &s, "--node", &primary][..], &e].concat());
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(text(&refused).contains("primary"), "{}", text(&refused));

    nodes[g].kill();
    let out = ok(&[&["shard", "remove-replica", &s, "--node", &gone][..], &e].concat());
    assert!(out.contains("taken out"), "{out}");
    assert!(specs[g].data.join("shards").join("000").exists());
    nodes[g] = start(&specs[g], &etcd, "mv1");
    nodes[g].eventually(&format!("{gone} to move its old copy aside"), || {
        !specs[g].data.join("shards").join("000").exists()
    });
    assert!(!holds(&nodes[g], shard));
    let moved = dropped(&specs[g].data);
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert!(moved[0].starts_with("000-"), "{moved:?}");
    assert!(specs[g]
        .data
        .join("dropped")
        .join(&moved[0])
        .join("CURRENT")
        .is_file());
    // It serves the whole service: the shard through its copies elsewhere.
    let (st, feed) = nodes[g].call("GET", "/feed", Some(&token), None);
    assert_eq!(st, 200, "{feed}");
    for i in 0..5 {
        nodes[g].tweet(&token, &format!("after the removal {i}"));
    }

    // min_sync 1: the last replica stays.
    let others = names(&status(&etcd, "mv1")["shards"][0]["replicas"]);
    assert_eq!(others.len(), 1, "{others:?}");
    let last = ctl(&[
        &["shard", "remove-replica", &s, "--node", &others[0]][..],
        &e,
    ]
    .concat());
    assert!(!last.status.success(), "{}", text(&last));
    assert!(text(&last).contains("min_sync"), "{}", text(&last));
}

/// `chirpctl shard move --role primary` while 4 clients post through random nodes: a 4th
/// node takes a copy, catches up, joins the sync set and takes over as primary; the old
/// primary's copy is taken out and dropped. Every acknowledged post reads back through
/// every node, the new copies are identical, an image posted before still loads through
/// every node, and clients saw no error (a 421/503 the nodes retry is counted, not an
/// error).
#[test]
fn a_primary_moves_to_a_new_node_under_writes_and_loses_nothing() {
    let Three {
        etcd,
        specs,
        nodes,
        _ca,
        ..
    } = four("mv2", 2, 2);
    let e = etcd_args(&etcd.url, "mv2");

    let users: Vec<(String, String)> = (0..8)
        .map(|i| nodes[i % 3].user(&format!("poster{i}")))
        .collect();
    let shard = chirp_engine::ids::shard_of_id(
        nodes[0]
            .tweet(&users[0].1, "which shard")
            .parse()
            .expect("id"),
    ) as u64;
    let up = nodes[1].send(
        "POST",
        "/media",
        Some(&users[0].1),
        &[("Content-Type", "image/png")],
        Some(&picture(3)),
    );
    assert_eq!(up.status, 201, "{}", up.json());
    let media = up.json()["id"].as_str().expect("id").to_string();
    let (st, t) = nodes[2].call(
        "POST",
        "/tweet",
        Some(&users[0].1),
        Some(serde_json::json!({"text": "a picture before the move", "media": [media]})),
    );
    assert_eq!(st, 201, "{t}");
    let before = status(&etcd, "mv2");
    let from = before["shards"][shard as usize]["primary"]
        .as_str()
        .expect("primary")
        .to_string();
    let f = index_of(&Value::from(from.as_str()));
    let s = shard.to_string();

    let dry = ok(&[
        &[
            "shard",
            "move",
            &s,
            "--to",
            "n4",
            "--role",
            "primary",
            "--dry-run",
        ][..],
        &e,
    ]
    .concat());
    assert!(
        dry.contains("dry run") && dry.contains("hands shard"),
        "{dry}"
    );
    assert_eq!(
        status(&etcd, "mv2")["shards"][shard as usize],
        before["shards"][shard as usize],
        "a dry run writes nothing"
    );

    let stop = AtomicBool::new(false);
    let retried = AtomicUsize::new(0);
    let acked: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let slowest: Mutex<Vec<Duration>> = Mutex::new(Vec::new());
    let (out, took) = std::thread::scope(|scope| {
        for w in 0..4 {
            let (nodes, users, stop, retried, acked, slowest) =
                (&nodes, &users, &stop, &retried, &acked, &slowest);
            scope.spawn(move || {
                let mut k = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (_, token) = &users[(w + 4 * k) % users.len()];
                    let sent = Instant::now();
                    let id = post_retrying(
                        &nodes[(w + k) % nodes.len()],
                        token,
                        &format!("poster {w} post {k}"),
                        retried,
                    );
                    slowest.lock().expect("slowest").push(sent.elapsed());
                    acked.lock().expect("acked").push(id);
                    k += 1;
                    std::thread::sleep(Duration::from_millis(60));
                }
            });
        }
        std::thread::sleep(Duration::from_millis(500));
        let started = Instant::now();
        let out = try_move_primary(&s, "n4", 60, &e);
        let took = started.elapsed();
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        (out, took)
    });
    assert!(out.status.success(), "{}", text(&out));
    let after = status(&etcd, "mv2");
    let sh = &after["shards"][shard as usize];
    assert_eq!(sh["primary"], "n4", "{sh}");
    assert!(!holders(&after, shard).contains(&from), "{sh}");
    assert!(sh.get("moving").is_none() || sh["moving"].is_null(), "{sh}");
    assert_eq!(sh["epoch"], 2, "{sh}");
    let list = ok(&[&["move", "list"][..], &e].concat());
    assert!(list.contains("no moves"), "{list}");

    nodes[0].eventually(&format!("{from} to drop its copy"), || {
        !holds(&nodes[f], shard)
    });
    assert_eq!(dropped(&specs[f].data).len(), 1);
    let copies: Vec<usize> = holders(&after, shard)
        .iter()
        .map(|n| index_of(&Value::from(n.as_str())))
        .collect();
    nodes[0].eventually("the shard's copies to be identical", || {
        identical(&nodes, &copies, shard)
    });
    let acked = acked.into_inner().expect("acked");
    let moved = acked
        .iter()
        .filter(|id| chirp_engine::ids::shard_of_id(id.parse().expect("id")) as u64 == shard)
        .count();
    for node in &nodes {
        for id in &acked {
            let (st, v) = node.call("GET", &format!("/tweets/{id}"), None, None);
            assert_eq!(st, 200, "{id} through {}: {v}", node.base);
        }
        let img = node.send("GET", &format!("/media/{media}"), None, &[], None);
        assert_eq!(img.status, 200, "the image through {}", node.base);
    }
    let mut took_each = slowest.into_inner().expect("slowest");
    took_each.sort();
    eprintln!(
        "move of shard {shard} ({from} -> n4, primary) took {took:?}; {} posts acknowledged \
         ({moved} on the shard); post latency median {:?}, max {:?}; {} retried 421/503",
        acked.len(),
        took_each[took_each.len() / 2],
        took_each[took_each.len() - 1],
        retried.load(Ordering::Relaxed)
    );
    assert!(moved > 0, "no post went to shard {shard}");

    // And back: the old primary reopens the shard in the slot it dropped, empty, catches up
    // and takes over again.
    let back = move_primary(&s, &from, 60, &e);
    assert!(back.contains(&format!("primary {from}")), "{back}");
    let last = status(&etcd, "mv2");
    assert!(!holders(&last, shard).contains(&"n4".to_string()), "{last}");
    let copies: Vec<usize> = holders(&last, shard)
        .iter()
        .map(|n| index_of(&Value::from(n.as_str())))
        .collect();
    nodes[0].eventually("the copies to be identical after moving back", || {
        identical(&nodes, &copies, shard)
    });
    for id in &acked {
        let (st, v) = nodes[f].call("GET", &format!("/tweets/{id}"), None, None);
        assert_eq!(st, 200, "{id}: {v}");
    }
}

/// A move aborted before its cutover leaves the shard as it was: the target's copy is taken
/// back out (and dropped), whether the target was running or down when it was aborted.
#[test]
fn an_aborted_move_leaves_no_copy_behind() {
    let Three {
        etcd,
        specs,
        nodes,
        _ca,
        ..
    } = four("mv3", 2, 2);
    let e = etcd_args(&etcd.url, "mv3");
    let (_, token) = nodes[0].user("stayer");
    nodes[0].tweet(&token, "before");
    let before = status(&etcd, "mv3")["shards"][1].clone();
    // The target is paused (its registration lives on for up to the TTL, so the move is
    // accepted): the move waits in catching_up, a learner that cannot catch up.
    // SAFETY: kill(2) on a child process this test started.
    unsafe { libc::kill(nodes[3].pid() as i32, libc::SIGSTOP) };
    ok(&[&["shard", "move", "1", "--to", "n4"][..], &e].concat());
    let status_out = ok(&[&["move", "status", "1"][..], &e].concat());
    assert!(status_out.contains("catching_up"), "{status_out}");
    let out = ok(&[&["move", "abort", "1"][..], &e].concat());
    assert!(out.contains("aborted"), "{out}");
    let after = status(&etcd, "mv3")["shards"][1].clone();
    assert_eq!(after, before, "the shard is as it was");
    // SAFETY: as above.
    unsafe { libc::kill(nodes[3].pid() as i32, libc::SIGCONT) };
    nodes[3].eventually("n4 to hold no copy", || {
        !holds(&nodes[3], 1) && !specs[3].data.join("shards").join("001").exists()
    });
    let again = ctl(&[&["move", "abort", "1"][..], &e].concat());
    assert!(!again.status.success(), "{}", text(&again));
}

/// A move goes on across the death of the controller that was carrying it out and of its
/// target: kill -9 the elected controller right after the move starts (its shards fail
/// over; a new controller is elected), then the target while it catches up; both restart.
/// The move finishes, no learner is left, nothing acknowledged meanwhile is lost, and the
/// shard's copies are identical.
#[test]
fn a_move_survives_its_controller_and_its_target_dying() {
    let Three {
        etcd,
        specs,
        mut nodes,
        _ca,
        ..
    } = four("mv5", 4, 2);
    let e = etcd_args(&etcd.url, "mv5");
    nodes[0].eventually("a controller to be elected", || {
        status(&etcd, "mv5")["controller"].is_string()
    });
    let map = status(&etcd, "mv5");
    let controller = map["controller"]
        .as_str()
        .expect("a controller")
        .to_string();
    let c = index_of(&Value::from(controller.as_str()));
    let shard = (0..4u64)
        .find(|&s| map["shards"][s as usize]["primary"] != controller.as_str())
        .expect("a shard led elsewhere");
    let s = shard.to_string();
    // Clients post through the two nodes that stay up.
    let entries: Vec<usize> = (0..3).filter(|&i| i != c).collect();
    let users: Vec<(String, String)> = (0..4)
        .map(|i| nodes[entries[i % 2]].user(&format!("survivor{i}")))
        .collect();

    let retried = AtomicUsize::new(0);
    let acked: Mutex<Vec<String>> = Mutex::new(Vec::new());
    // Clients hold URLs, not the nodes: the nemesis kills and restarts nodes meanwhile.
    let stop = AtomicBool::new(false);
    let nodes_ref = &mut nodes;
    let specs_ref = &specs;
    let out = std::thread::scope(|scope| {
        let (stop_r, retried_r, acked_r) = (&stop, &retried, &acked);
        let bases: Vec<String> = entries.iter().map(|&i| nodes_ref[i].base.clone()).collect();
        let tokens: Vec<String> = users.iter().map(|(_, t)| t.clone()).collect();
        for w in 0..2 {
            let (bases, tokens) = (bases.clone(), tokens.clone());
            scope.spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(30))
                    .build();
                let mut k = 0usize;
                while !stop_r.load(Ordering::Relaxed) {
                    let deadline = Instant::now() + Duration::from_secs(30);
                    loop {
                        let answer = chirp_testkit::node::try_call(
                            &agent,
                            &bases[(w + k) % 2],
                            "POST",
                            "/tweet",
                            Some(&tokens[(w + 2 * k) % tokens.len()]),
                            Some(serde_json::json!({"text": format!("during w{w} p{k}")})),
                        );
                        match answer {
                            Ok((201, v)) => {
                                acked_r
                                    .lock()
                                    .expect("acked")
                                    .push(v["id"].as_str().expect("id").to_string());
                                break;
                            }
                            Ok((421 | 503, _)) if Instant::now() < deadline => {
                                retried_r.fetch_add(1, Ordering::Relaxed);
                            }
                            other => panic!("posting through {}: {other:?}", bases[(w + k) % 2]),
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    k += 1;
                    std::thread::sleep(Duration::from_millis(80));
                }
            });
        }
        ok(&[
            &["shard", "move", &s, "--to", "n4", "--role", "primary"][..],
            &e,
        ]
        .concat());
        // The controller dies at once, and comes back.
        nodes_ref[c].kill();
        std::thread::sleep(Duration::from_millis(3000));
        nodes_ref[c] = start(&specs_ref[c], &etcd, "mv5");
        // The target dies while it catches up (or later), and comes back.
        std::thread::sleep(Duration::from_millis(700));
        nodes_ref[3].kill();
        std::thread::sleep(Duration::from_millis(3000));
        nodes_ref[3] = start(&specs_ref[3], &etcd, "mv5");
        let out = ctl(&[
            &["move", "status", &s, "--wait", "--timeout-secs", "90"][..],
            &e,
        ]
        .concat());
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        out
    });
    assert!(out.status.success(), "{}", text(&out));
    let after = status(&etcd, "mv5");
    let sh = &after["shards"][shard as usize];
    assert!(sh["moving"].is_null(), "{sh}");
    assert!(names(&sh["learners"]).is_empty(), "{sh}");
    assert_eq!(sh["primary"], "n4", "{sh}");
    for other in after["shards"].as_array().expect("shards") {
        assert!(names(&other["learners"]).is_empty(), "{other}");
    }
    let copies: Vec<usize> = holders(&after, shard)
        .iter()
        .map(|n| index_of(&Value::from(n.as_str())))
        .collect();
    nodes[0].eventually("the moved shard's copies to be identical", || {
        identical(&nodes, &copies, shard)
    });
    let acked = acked.into_inner().expect("acked");
    assert!(!acked.is_empty());
    for node in &nodes {
        for id in &acked {
            let (st, v) = node.call("GET", &format!("/tweets/{id}"), None, None);
            assert_eq!(st, 200, "{id} through {}: {v}", node.base);
        }
    }
    eprintln!(
        "move across a controller and a target kill: {} posts acknowledged, {} retried 421/503",
        acked.len(),
        retried.load(Ordering::Relaxed)
    );
}

/// The write pause at a move's cutover, over `CHIRP_MOVE_ROUNDS` (3 by default; 20 for the
/// figures) moves of one shard's primary to the node holding no copy of it, while 4 clients
/// post as 4 to 6 users of that shard through random nodes: per move, its time and the slowest
/// post that ended within it (the pause); over all, their median and maximum, and the
/// client errors (none expected: a 421/503 the client retried counts as an error too).
#[test]
fn cutover_pauses_over_repeated_moves() {
    let rounds: usize = std::env::var("CHIRP_MOVE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let Three {
        etcd, nodes, _ca, ..
    } = four("mv6", 4, 2);
    let e = etcd_args(&etcd.url, "mv6");
    // Users whose rows are on one shard: every post of the run goes to it.
    let mut on_shard: Vec<(String, String)> = Vec::new();
    let mut shard = None;
    // Each node signs up at most 20 per address an hour: 60 at most here.
    for i in 0..60 {
        let (id, token) = nodes[i % 4].user(&format!("paused{i}"));
        let s = chirp_engine::ids::shard_of_user(id.parse().expect("id"), 4) as u64;
        if shard.is_none_or(|x| x == s) {
            shard = Some(s);
            on_shard.push((id, token));
        }
        if on_shard.len() == 6 {
            break;
        }
    }
    let shard = shard.expect("a shard");
    assert!(on_shard.len() >= 4, "{on_shard:?}");
    let s = shard.to_string();

    let stop = AtomicBool::new(false);
    let retried = AtomicUsize::new(0);
    // (end of the post, how long it took)
    let posts: Mutex<Vec<(Instant, Duration)>> = Mutex::new(Vec::new());
    let mut moves: Vec<(Instant, Instant)> = Vec::new();
    std::thread::scope(|scope| {
        for w in 0..4 {
            let (nodes, users, stop, retried, posts) = (&nodes, &on_shard, &stop, &retried, &posts);
            scope.spawn(move || {
                let mut k = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (_, token) = &users[(w + k) % users.len()];
                    let sent = Instant::now();
                    post_retrying(&nodes[(w + k) % 4], token, &format!("w{w} k{k}"), retried);
                    posts
                        .lock()
                        .expect("posts")
                        .push((Instant::now(), sent.elapsed()));
                    k += 1;
                    // Each user stays well under the per-user write limit (10/s).
                    std::thread::sleep(Duration::from_millis(120));
                }
            });
        }
        std::thread::sleep(Duration::from_millis(500));
        for _ in 0..rounds {
            let map = status(&etcd, "mv6");
            let holding = holders(&map, shard);
            let to = (1..=4)
                .map(|i| format!("n{i}"))
                .find(|n| !holding.contains(n))
                .expect("a node without a copy");
            let started = Instant::now();
            move_primary(&s, &to, 60, &e);
            moves.push((started, Instant::now()));
        }
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
    });
    let posts = posts.into_inner().expect("posts");
    let mut pauses: Vec<Duration> = moves
        .iter()
        .map(|(from, to)| {
            posts
                .iter()
                .filter(|(end, _)| end >= from && end <= to)
                .map(|(_, took)| *took)
                .max()
                .unwrap_or_default()
        })
        .collect();
    let mut times: Vec<Duration> = moves.iter().map(|(a, b)| *b - *a).collect();
    pauses.sort();
    times.sort();
    let mut all: Vec<Duration> = posts.iter().map(|(_, t)| *t).collect();
    all.sort();
    let retries = retried.load(Ordering::Relaxed);
    eprintln!(
        "{rounds} moves of shard {shard}'s primary under writes: move time median {:?}, max \
         {:?}; write pause (slowest post within a move) median {:?}, max {:?}; all {} posts: \
         median {:?}; client retries (421/503) {retries}",
        times[times.len() / 2],
        times[times.len() - 1],
        pauses[pauses.len() / 2],
        pauses[pauses.len() - 1],
        all.len(),
        all[all.len() / 2],
    );
    assert_eq!(retries, 0, "clients saw 421/503 during moves");
    let map = status(&etcd, "mv6");
    let copies: Vec<usize> = holders(&map, shard)
        .iter()
        .map(|n| index_of(&Value::from(n.as_str())))
        .collect();
    nodes[0].eventually("the copies to be identical", || {
        identical(&nodes, &copies, shard)
    });
}

/// A cluster whose data was bulk-imported on n1 (`chirp-load generate --cluster`, `users`
/// users with `tweets` tweets each), n1 added alone, then n2 and n3 added (holding nothing
/// until a rebalance).
struct Imported {
    nodes: Vec<Chirp>,
    specs: Vec<chirp_testkit::cluster::NodeSpec>,
    _ca: chirp_testkit::cluster::Cluster,
    etcd: chirp_testkit::etcd::Etcd,
    /// How long the generation took.
    generated: Duration,
}

fn imported(cluster: &str, shards: u32, users: usize, tweets: usize) -> Imported {
    let etcd = chirp_testkit::etcd::Etcd::start();
    let e = etcd_args(&etcd.url, cluster);
    let shards = shards.to_string();
    ok(&[
        &[
            "cluster", "create", "--name", cluster, "--shards", &shards, "--rf", "2",
        ][..],
        &["--etcd", &etcd.url][..],
    ]
    .concat());
    let ca = chirp_testkit::cluster::Cluster::new();
    let specs: Vec<_> = ["n1", "n2", "n3"].iter().map(|n| ca.node(n)).collect();
    let started = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chirp-load"))
        .args([
            "generate",
            "--json",
            "--cluster",
            cluster,
            "--shards",
            &shards,
        ])
        .args(["--users", &users.to_string()])
        .args([
            "--tweets-per-user",
            &tweets.to_string(),
            "--mean-following",
            "5",
        ])
        .arg("--data")
        .arg(&specs[0].data)
        .output()
        .expect("chirp-load");
    assert!(out.status.success(), "{}", text(&out));
    let generated = started.elapsed();
    let mut nodes = vec![start(&specs[0], &etcd, cluster)];
    ok(&[&["node", "add", "n1"][..], &e].concat());
    for spec in &specs[1..] {
        nodes.push(start(spec, &etcd, cluster));
    }
    ok(&[&["node", "add", "n2", "n3"][..], &e].concat());
    Imported {
        nodes,
        specs,
        _ca: ca,
        etcd,
        generated,
    }
}

/// A bulk import into a cluster: `chirp-load generate --cluster` fills one node's dir, holding
/// every shard; that node is added alone (the map gives it every shard), two more are added,
/// and `chirpctl rebalance` gives every shard its second copy (taken from a checkpoint: an
/// import leaves nothing in the oplog) and spreads copies and primaries. Every imported user
/// logs in and reads their tweets through every node, and the copies are identical.
#[test]
fn a_bulk_import_spreads_over_the_cluster_by_rebalance() {
    let Imported {
        etcd, nodes, _ca, ..
    } = imported("mv7", 4, 300, 3);
    let e = etcd_args(&etcd.url, "mv7");
    let out = ok(&[&["rebalance", "--timeout-secs", "120"][..], &e].concat());
    assert!(out.contains("0 failed"), "{out}");
    let map = status(&etcd, "mv7");
    let mut led = BTreeSet::new();
    for shard in 0..4u64 {
        let copies = holders(&map, shard);
        assert_eq!(copies.len(), 2, "{map}");
        led.insert(copies[0].clone());
        let at: Vec<usize> = copies
            .iter()
            .map(|n| index_of(&Value::from(n.as_str())))
            .collect();
        nodes[0].eventually(&format!("shard {shard}'s copies to be identical"), || {
            identical(&nodes, &at, shard)
        });
    }
    assert_eq!(led.len(), 3, "primaries spread: {map}");
    for i in [0usize, 7, 150, 299] {
        let handle = format!("u{i}");
        for node in &nodes {
            let (st, v) = node.call(
                "POST",
                "/sessions",
                None,
                Some(serde_json::json!({"handle": handle, "password": "chirp-load-password"})),
            );
            assert_eq!(st, 200, "{handle} logs in through {}: {v}", node.base);
            let id = v["user_id"].as_str().expect("user_id");
            let token = v["token"].as_str().expect("token");
            let (st, t) = node.call("GET", &format!("/{id}/tweets"), Some(token), None);
            assert_eq!(st, 200, "{t}");
            assert_eq!(t["tweets"].as_array().map(Vec::len), Some(3), "{t}");
        }
    }
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        total += if meta.is_dir() {
            dir_bytes(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

/// Moving an imported shard: its oplog holds none of the imported rows, so the target takes
/// a checkpoint of it. One shard of `CHIRP_MOVE_TWEETS` tweets (3,000 by default; 1,000,000
/// for the figures: 100,000 users with 10 each), imported on n1 and given its second copy by
/// `rebalance`, moves with its primary to n3; prints the move's time, the bytes the target
/// holds after it and the rate. The copies are identical and the tweets read back through
/// the new primary.
#[test]
fn a_moved_imported_shard_comes_from_a_checkpoint() {
    let tweets: usize = std::env::var("CHIRP_MOVE_TWEETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let users = (tweets / 10).max(10);
    let Imported {
        etcd,
        specs,
        nodes,
        _ca,
        generated,
    } = imported("mv8", 1, users, 10);
    let e = etcd_args(&etcd.url, "mv8");
    let out = ok(&[&["rebalance", "--timeout-secs", "1800"][..], &e].concat());
    assert!(out.contains("0 failed"), "{out}");
    let map = status(&etcd, "mv8");
    let copies = holders(&map, 0);
    assert_eq!(copies.len(), 2, "{map}");
    let to = ["n1", "n2", "n3"]
        .into_iter()
        .find(|n| !copies.iter().any(|c| c == n))
        .expect("a node without a copy");
    let t = index_of(&Value::from(to));
    // The replica rebalance made took a checkpoint: the oplog holds nothing imported.
    let replica = &nodes[index_of(&Value::from(copies[1].as_str()))];
    let theirs = shard_report(replica, 0).expect("the replica's report");
    let primary = shard_report(&nodes[index_of(&Value::from(copies[0].as_str()))], 0)
        .expect("the primary's report");
    assert!(theirs["bootstraps"].as_u64() >= Some(1), "{theirs}");
    assert!(
        theirs["checkpoint_bytes"].as_u64() > Some(0)
            && theirs["checkpoint_bytes"].as_u64() <= primary["bytes"].as_u64().map(|b| b * 2),
        "{theirs} {primary}"
    );
    let started = Instant::now();
    move_primary("0", to, 1800, &e);
    let took = started.elapsed();
    let bytes = dir_bytes(&specs[t].data.join("shards").join("000"));
    let after = status(&etcd, "mv8");
    assert_eq!(after["shards"][0]["primary"], to, "{after}");
    let at: Vec<usize> = holders(&after, 0)
        .iter()
        .map(|n| index_of(&Value::from(n.as_str())))
        .collect();
    nodes[t].eventually("the copies to be identical", || identical(&nodes, &at, 0));
    let (st, v) = nodes[t].call(
        "POST",
        "/sessions",
        None,
        Some(serde_json::json!({"handle": "u1", "password": "chirp-load-password"})),
    );
    assert_eq!(st, 200, "{v}");
    let id = v["user_id"].as_str().expect("user_id");
    let (st, page) = nodes[t].call("GET", &format!("/{id}/tweets"), v["token"].as_str(), None);
    assert_eq!(st, 200, "{page}");
    assert_eq!(page["tweets"].as_array().map(Vec::len), Some(10), "{page}");
    eprintln!(
        "moved a shard of {tweets} imported tweets ({users} users; generated in {generated:?}) \
         to {to} as primary in {took:?}: {:.1} MB on the target, {:.1} MB/s",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / took.as_secs_f64()
    );
}

/// Calls through `via`, retrying a 421 or 503 (a shard changing hands) for up to 20 s; the
/// last answer.
fn call_retrying(
    via: &Chirp,
    method: &str,
    path: &str,
    token: &str,
    retried: &AtomicUsize,
) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match via.try_call(method, path, Some(token), None) {
            Ok((421 | 503, _)) if Instant::now() < deadline => {
                retried.fetch_add(1, Ordering::Relaxed);
            }
            Ok(answer) => return answer,
            Err(e) => return (0, Value::from(e)),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A 4th node joins 3 (8 shards, 2 copies each) and `chirpctl rebalance` moves shards onto
/// it while 8 clients post, follow and read through random nodes; then `node drain`
/// empties n1 under the same load and `node remove` retires it. No client sees an error
/// (421/503 retried inside the nodes or by the client are counted apart), every
/// acknowledged post and follow is there afterwards through every remaining node, every
/// shard's copies are identical, n4 leads its share, and every image loads everywhere.
#[test]
fn rebalance_then_drain_and_remove_under_load() {
    let Three {
        etcd, nodes, _ca, ..
    } = four("mv4", 8, 2);
    let e = etcd_args(&etcd.url, "mv4");

    let users: Vec<(String, String)> = (0..8)
        .map(|i| nodes[i % 4].user(&format!("client{i}")))
        .collect();
    let mut images = Vec::new();
    for (i, (_, token)) in users.iter().enumerate() {
        let up = nodes[i % 4].send(
            "POST",
            "/media",
            Some(token),
            &[("Content-Type", "image/png")],
            Some(&picture(i as u8)),
        );
        assert_eq!(up.status, 201, "{}", up.json());
        let media = up.json()["id"].as_str().expect("id").to_string();
        let (st, t) = nodes[(i + 1) % 4].call(
            "POST",
            "/tweet",
            Some(token),
            Some(serde_json::json!({"text": format!("picture {i}"), "media": [media]})),
        );
        assert_eq!(st, 201, "{t}");
        images.push(media);
    }
    let plan = ok(&[&["rebalance", "--dry-run"][..], &e].concat());
    assert!(plan.contains("n4"), "{plan}");

    let stop = AtomicBool::new(false);
    let retried = AtomicUsize::new(0);
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let posted: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let followed: Mutex<BTreeSet<(usize, usize)>> = Mutex::new(BTreeSet::new());
    let (rebalanced, drained) = std::thread::scope(|scope| {
        for c in 0..8 {
            let (nodes, users, stop, retried, errors, posted, followed) =
                (&nodes, &users, &stop, &retried, &errors, &posted, &followed);
            scope.spawn(move || {
                let mut k = 0usize;
                let (me, token) = &users[c];
                while !stop.load(Ordering::Relaxed) {
                    // n1 is drained and removed meanwhile: clients use the others.
                    let via = &nodes[1 + (c + k) % 3];
                    match k % 3 {
                        0 => {
                            let id =
                                post_retrying(via, token, &format!("client {c} post {k}"), retried);
                            posted.lock().expect("posted").push(id);
                        }
                        1 => {
                            let other = (c + 1 + k / 3) % 8;
                            if other != c {
                                let path = format!("/{me}/follow/{}", users[other].0);
                                let (st, v) = call_retrying(via, "POST", &path, token, retried);
                                if (200..300).contains(&st) {
                                    followed.lock().expect("followed").insert((c, other));
                                } else {
                                    errors
                                        .lock()
                                        .expect("errors")
                                        .push(format!("follow {st} {v}"));
                                }
                            }
                        }
                        _ => {
                            let (st, v) = call_retrying(via, "GET", "/feed", token, retried);
                            if st != 200 {
                                errors
                                    .lock()
                                    .expect("errors")
                                    .push(format!("feed {st} {v}"));
                            }
                        }
                    }
                    k += 1;
                    std::thread::sleep(Duration::from_millis(120));
                }
            });
        }
        std::thread::sleep(Duration::from_millis(500));
        let rebalanced = ctl(&[&["rebalance", "--timeout-secs", "120"][..], &e].concat());
        let drained = ctl(&[&["node", "drain", "n1", "--timeout-secs", "120"][..], &e].concat());
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        (rebalanced, drained)
    });
    assert!(rebalanced.status.success(), "{}", text(&rebalanced));
    assert!(drained.status.success(), "{}", text(&drained));
    let map = status(&etcd, "mv4");
    for sh in map["shards"].as_array().expect("shards") {
        assert!(sh.get("moving").is_none_or(Value::is_null), "{sh}");
        let copies = holders(&map, sh["id"].as_u64().expect("id"));
        assert_eq!(copies.len(), 2, "{sh}");
        assert!(!copies.contains(&"n1".to_string()), "{sh}");
    }
    let led = map["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .filter(|s| s["primary"] == "n4")
        .count();
    assert!(led >= 2, "n4 leads {led} of 8 shards: {map}");
    let out = ok(&[&["node", "remove", "n1"][..], &e].concat());
    assert!(out.contains("removed"), "{out}");
    let again = ctl(&[&["node", "add", "n1"][..], &e].concat());
    assert!(!again.status.success(), "{}", text(&again));

    let errors = errors.into_inner().expect("errors");
    assert!(errors.is_empty(), "clients saw errors: {errors:?}");
    let posted = posted.into_inner().expect("posted");
    let followed = followed.into_inner().expect("followed");
    let rest = &nodes[1..];
    for node in rest {
        for id in &posted {
            let (st, v) = node.call("GET", &format!("/tweets/{id}"), None, None);
            assert_eq!(st, 200, "{id} through {}: {v}", node.base);
        }
        for media in &images {
            let img = node.send("GET", &format!("/media/{media}"), None, &[], None);
            assert_eq!(img.status, 200, "image {media} through {}", node.base);
        }
    }
    for &(c, other) in &followed {
        let (me, token) = &users[c];
        let (st, v) = rest[c % 3].call(
            "GET",
            &format!("/{me}/following?limit=100"),
            Some(token),
            None,
        );
        assert_eq!(st, 200, "{v}");
        let following: Vec<&str> = v["users"]
            .as_array()
            .expect("users")
            .iter()
            .filter_map(|u| u["id"].as_str())
            .collect();
        assert!(
            following.contains(&users[other].0.as_str()),
            "{me} follows {}",
            users[other].0
        );
    }
    let map = status(&etcd, "mv4");
    for shard in 0..8u64 {
        let copies: Vec<usize> = holders(&map, shard)
            .iter()
            .map(|n| index_of(&Value::from(n.as_str())))
            .collect();
        nodes[1].eventually(&format!("shard {shard}'s copies to be identical"), || {
            identical(&nodes, &copies, shard)
        });
    }
    eprintln!(
        "rebalance and drain under load: {} posts and {} follows acknowledged, {} retried \
         421/503, 0 errors; rebalance: {}drain: {}",
        posted.len(),
        followed.len(),
        retried.load(Ordering::Relaxed),
        String::from_utf8_lossy(&rebalanced.stdout),
        String::from_utf8_lossy(&drained.stdout)
    );
}
