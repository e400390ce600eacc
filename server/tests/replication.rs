//! Replication with real processes on loopback: replicas serve what the primary wrote, catch
//! up after SIGKILL with no gap or duplicate, bootstrap from a checkpoint past the trimmed
//! oplog, and a promoted replica takes writes while the deposed primary's extra entries are
//! dumped, never merged.

mod common;

use std::time::Duration;

use common::cluster::{status, wait_identical, Cluster};
use common::Chirp;
use serde_json::json;

fn tweet_ids(node: &Chirp, path: &str, token: Option<&str>) -> Vec<String> {
    node.all_ids(path, token, 100)
}

#[test]
fn replicas_serve_what_the_primary_wrote() {
    let cluster = Cluster::new();
    let (p, r1, r2) = (cluster.node("p"), cluster.node("r1"), cluster.node("r2"));
    let primary = p.primary(&[]);
    let a = r1.replica_of(&p, &[]);
    let b = r2.replica_of(&p, &[]);
    let (alice, alice_t) = primary.user("alice");
    let (bob, bob_t) = primary.user("bob");
    let (s, _) = primary.call(
        "POST",
        &format!("/{bob}/follow/{alice}"),
        Some(&bob_t),
        None,
    );
    assert_eq!(s, 200);
    let (s, _) = primary.call(
        "PATCH",
        &format!("/{alice}/profile"),
        Some(&alice_t),
        Some(json!({"bio": "replicated"})),
    );
    assert_eq!(s, 200);
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(primary.tweet(&alice_t, &format!("hello {i} #replicated")));
    }
    wait_identical(&primary, &[&a, &b], Duration::from_secs(20));
    let expected = common::newest_first(ids);
    for replica in [&a, &b] {
        assert_eq!(
            tweet_ids(replica, &format!("/{alice}/tweets"), None),
            expected
        );
        // Bob's session token was written on the primary and replicated.
        assert_eq!(tweet_ids(replica, "/feed", Some(&bob_t)), expected);
        assert_eq!(
            tweet_ids(replica, "/search/tags/replicated", None),
            expected
        );
        let (_, profile) = replica.call("GET", &format!("/{alice}/profile"), None, None);
        assert_eq!(profile["bio"], "replicated");
        assert_eq!(profile["followers_count"], 1);
        // Writes are refused with 421, naming the primary.
        let (s, problem) = replica.call(
            "POST",
            "/tweet",
            Some(&alice_t),
            Some(json!({"text": "nope"})),
        );
        assert_eq!(s, 421, "{problem}");
        assert!(problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&primary.base)));
        let st = status(replica);
        assert_eq!(st["role"], "replica");
        assert!(st["shards"]
            .as_array()
            .expect("shards")
            .iter()
            .all(|s| s["lag_lsn"] == 0 && s["connected"] == true));
    }
    let st = status(&primary);
    assert_eq!(st["role"], "primary");
    assert_eq!(
        st["shards"][0]["replicas"].as_array().map(Vec::len),
        Some(2)
    );
}

#[test]
fn a_replica_killed_during_writes_catches_up_with_no_gap_or_duplicate() {
    let cluster = Cluster::new();
    let (p, r) = (cluster.node("p"), cluster.node("r"));
    let primary = p.primary(&[]);
    let mut replica = r.replica_of(&p, &[]);
    let (_, token) = primary.user("writer");
    let writer = {
        let base = primary.base.clone();
        let token = token.clone();
        std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new().build();
            for i in 0..300 {
                let (s, v) = common::try_call(
                    &agent,
                    &base,
                    "POST",
                    "/tweet",
                    Some(&token),
                    Some(json!({"text": format!("steady {i} #load")})),
                )
                .expect("primary answers");
                assert_eq!(s, 201, "{v}");
            }
        })
    };
    std::thread::sleep(Duration::from_millis(400));
    replica.kill();
    std::thread::sleep(Duration::from_millis(400));
    let replica = r.replica_of(&p, &[]);
    writer.join().expect("writer");
    wait_identical(&primary, &[&replica], Duration::from_secs(30));
    assert_eq!(
        tweet_ids(&replica, "/search/tags/load", None).len(),
        300,
        "every tweet once"
    );
}

#[test]
fn a_replica_behind_the_trimmed_oplog_bootstraps_from_a_checkpoint() {
    let cluster = Cluster::new();
    let (p, r) = (cluster.node("p"), cluster.node("r"));
    let primary = p.primary(&["--oplog-retain", "5"]);
    let (alice, token) = primary.user("alice");
    for i in 0..40 {
        primary.tweet(&token, &format!("before the replica {i} #early"));
    }
    primary.eventually("the oplog to be trimmed", || {
        status(&primary)["shards"]
            .as_array()
            .expect("shards")
            .iter()
            .any(|s| s["oldest_lsn"].as_u64().unwrap_or(0) > 1)
    });
    let replica = r.replica_of(&p, &[]);
    primary.tweet(&token, "after the replica #late");
    wait_identical(&primary, &[&replica], Duration::from_secs(30));
    replica.eventually("the replica to report its bootstrap", || {
        status(&replica)["shards"]
            .as_array()
            .expect("shards")
            .iter()
            .map(|s| s["bootstraps"].as_u64().unwrap_or(0))
            .sum::<u64>()
            >= 1
    });
    // The hashtag index was rebuilt from the installed checkpoint.
    assert_eq!(tweet_ids(&replica, "/search/tags/early", None).len(), 40);
    assert_eq!(tweet_ids(&replica, "/search/tags/late", None).len(), 1);
    assert_eq!(
        tweet_ids(&replica, &format!("/{alice}/tweets"), None).len(),
        41
    );
}

#[test]
fn a_promoted_replica_takes_writes_and_the_deposed_primary_dumps_its_divergent_tail() {
    let cluster = Cluster::new();
    let (p, r) = (cluster.node("p"), cluster.node("r"));
    let mut primary = p.primary(&[]);
    let mut replica = r.replica_of(&p, &[]);
    let (alice, token) = primary.user("alice");
    let kept = primary.tweet(&token, "replicated before the failover");
    wait_identical(&primary, &[&replica], Duration::from_secs(20));
    // Stop the replica so the next write reaches only the primary (async mode acknowledges
    // it), then lose the primary and bring the replica back, still following the dead one.
    replica.kill();
    let lost = primary.tweet(&token, "acknowledged only by the old primary");
    primary.kill();
    let replica = r.replica_of(&p, &[]);
    let (s, v) = replica.admin_call("POST", "/promote", None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["epochs"][0], 2);
    let after = replica.tweet(&token, "written on the new primary");
    assert_eq!(
        replica
            .call("GET", &format!("/tweets/{kept}"), None, None)
            .0,
        200
    );
    assert_eq!(
        replica
            .call("GET", &format!("/tweets/{lost}"), None, None)
            .0,
        404
    );

    // The old primary rejoins as a replica of the new one.
    let old = p.replica_of(&r, &[]);
    wait_identical(&replica, &[&old], Duration::from_secs(30));
    assert_eq!(
        old.call("GET", &format!("/tweets/{after}"), None, None).0,
        200
    );
    assert_eq!(
        old.call("GET", &format!("/tweets/{lost}"), None, None).0,
        404
    );
    let dumps: Vec<_> = std::fs::read_dir(&p.data)
        .expect("data dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("divergent-"))
        .collect();
    assert!(!dumps.is_empty(), "the divergent entry was dumped");
    let (s, _) = old.call("POST", "/tweet", Some(&token), Some(json!({"text": "x"})));
    assert_eq!(s, 421);
    assert_eq!(
        tweet_ids(&old, &format!("/{alice}/tweets"), None),
        common::newest_first(vec![kept, after])
    );
}

#[test]
fn a_replica_restarted_without_replica_of_stays_read_only_until_promoted() {
    let cluster = Cluster::new();
    let (p, r) = (cluster.node("p"), cluster.node("r"));
    let primary = p.primary(&[]);
    let mut replica = r.replica_of(&p, &[]);
    let (_, token) = primary.user("alice");
    primary.tweet(&token, "replicated");
    wait_identical(&primary, &[&replica], Duration::from_secs(20));
    assert!(replica.terminate().success());

    // The flag is forgotten: the data dir remembers that it is a replica's.
    let mut replica = r.primary(&[]);
    let (s, problem) = replica.call(
        "POST",
        "/tweet",
        Some(&token),
        Some(json!({"text": "written on a replica"})),
    );
    assert_eq!(s, 421, "{problem}");
    assert_eq!(status(&replica)["role"], "replica");

    // Promoting it is the explicit way to make it a primary, and that survives a restart.
    let (s, v) = replica.admin_call("POST", "/promote", None);
    assert_eq!(s, 200, "{v}");
    replica.tweet(&token, "written after the promotion");
    assert!(replica.terminate().success());
    let replica = r.primary(&[]);
    assert_eq!(status(&replica)["role"], "primary");
    replica.tweet(&token, "still the primary after a restart");
}
