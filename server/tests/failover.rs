//! Sync acknowledgement survives failovers: a Jepsen-style set workload writes tweets while the
//! primary is SIGKILLed, the replica promoted and the old primary brought back as a replica,
//! cycle after cycle. Every acknowledged tweet must be on the new primary after each failover;
//! failed writes (refused, timed out or cut off) are indeterminate and only counted.
//!
//! Cycles: `CHIRP_FAILOVER_CYCLES` (default 20).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::{status, wait_identical, Cluster};
use common::Chirp;
use serde_json::json;

const SYNC: [&str; 4] = ["--ack", "sync", "--sync-timeout-ms", "2000"];

fn wait_replica_connected(primary: &Chirp) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = status(primary);
        let ready = st["shards"].as_array().is_some_and(|shards| {
            shards.iter().all(|s| {
                s["replicas"].as_array().is_some_and(|r| {
                    r.iter()
                        .any(|r| r["connected"] == true && r["lag_lsn"] == 0)
                })
            })
        });
        if ready {
            return;
        }
        assert!(Instant::now() < deadline, "replica never caught up: {st}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Posts tweets until told to stop or the node goes away; returns (acknowledged ids, failures).
fn write_until(
    base: String,
    token: String,
    cycle: usize,
    stop: Arc<AtomicBool>,
) -> (Vec<String>, usize) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    let (mut acked, mut failed) = (Vec::new(), 0);
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let body = json!({"text": format!("cycle {cycle} write {i}")});
        match common::try_call(&agent, &base, "POST", "/tweet", Some(&token), Some(body)) {
            Ok((201, v)) => acked.push(v["id"].as_str().expect("id").to_string()),
            Ok(_) => failed += 1,
            Err(_) => {
                failed += 1;
                break;
            }
        }
    }
    (acked, failed)
}

#[test]
fn sync_mode_loses_no_acknowledged_write_across_failovers() {
    let cycles: usize = std::env::var("CHIRP_FAILOVER_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let started = Instant::now();
    let cluster = Cluster::new();
    let nodes = [cluster.node("a"), cluster.node("b")];
    let mut primary = nodes[0].primary(&SYNC);
    let mut replica = nodes[1].replica_of(&nodes[0], &SYNC);
    let mut p = 0;
    wait_replica_connected(&primary);
    let (_, token) = primary.user("writer");
    let mut all_acked: Vec<String> = Vec::new();
    let mut all_failed = 0;
    for cycle in 0..cycles {
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (base, token, stop) = (primary.base.clone(), token.clone(), Arc::clone(&stop));
            std::thread::spawn(move || write_until(base, token, cycle, stop))
        };
        // Kill at a different point of the workload each cycle.
        std::thread::sleep(Duration::from_millis(150 + (cycle as u64 * 37) % 250));
        primary.kill();
        stop.store(true, Ordering::SeqCst);
        let (acked, failed) = writer.join().expect("writer");
        all_failed += failed;

        let (s, v) = replica.admin_call("POST", "/promote", None);
        assert_eq!(s, 200, "{v}");
        for id in &acked {
            let (s, v) = replica.call("GET", &format!("/tweets/{id}"), None, None);
            assert_eq!(s, 200, "cycle {cycle}: acknowledged tweet {id} lost: {v}");
        }
        all_acked.extend(acked);

        let old = nodes[p].replica_of(&nodes[1 - p], &SYNC);
        primary = std::mem::replace(&mut replica, old);
        p = 1 - p;
        wait_replica_connected(&primary);
    }
    wait_identical(&primary, &[&replica], Duration::from_secs(30));
    for node in [&primary, &replica] {
        for id in &all_acked {
            let (s, _) = node.call("GET", &format!("/tweets/{id}"), None, None);
            assert_eq!(s, 200, "acknowledged tweet {id} lost");
        }
    }
    assert!(!all_acked.is_empty());
    eprintln!(
        "{cycles} failovers in {:.1} s: {} writes acknowledged (all present), {} failed (indeterminate)",
        started.elapsed().as_secs_f64(),
        all_acked.len(),
        all_failed
    );
}
