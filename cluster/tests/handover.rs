//! `planned_failover` (what `chirpctl shard failover` runs) against the in-memory control
//! plane, with a task standing in for the primary that carries the handover out, calls it
//! off, or never acts. The nodes' side is tested with real processes in
//! `tools/tests/cluster.rs`.

use std::sync::Arc;
use std::time::Duration;

use chirp_cluster::admin::planned_failover;
use chirp_cluster::{
    ControlPlane, Error, MemoryControlPlane, NodeInfo, Registration, ShardAssignment, ShardUpdate,
};

fn node(name: &str) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        api: format!("{name}:1"),
        admin: format!("{name}:2"),
        repl: Some(format!("{name}:3")),
        started_at_ms: 1,
        software: "test".into(),
    }
}

/// A cluster with shard 0 on n1 (primary), n2 (sync) and n3; every node registered.
async fn cluster() -> (Arc<MemoryControlPlane>, Vec<Registration>) {
    let plane = Arc::new(MemoryControlPlane::new("h").expect("plane"));
    plane
        .create_config(&chirp_cluster::ClusterConfig {
            shards: 1,
            rf: 3,
            min_sync: 1,
        })
        .await
        .expect("config");
    let mut regs = Vec::new();
    for n in ["n1", "n2", "n3"] {
        regs.push(
            plane
                .register(&node(n), Duration::from_secs(10))
                .await
                .expect("register"),
        );
    }
    plane
        .update_shards(&[ShardUpdate {
            id: 0,
            expected_mod_revision: 0,
            assignment: ShardAssignment {
                epoch: 3,
                primary: "n1".into(),
                replicas: vec!["n2".into(), "n3".into()],
                sync: vec!["n2".into()],
                learners: vec![],
                handover: None,
                moving: None,
            },
        }])
        .await
        .expect("map");
    (plane, regs)
}

/// Stands in for the primary: once a handover is asked, writes what `decide` makes of it.
fn primary(
    plane: Arc<MemoryControlPlane>,
    decide: impl Fn(&ShardAssignment) -> ShardAssignment + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let map = plane.read_map().await.expect("map");
            let shard = &map.shards[&0];
            if shard.assignment.handover.is_some() {
                plane
                    .update_shards(&[ShardUpdate {
                        id: 0,
                        expected_mod_revision: shard.mod_revision,
                        assignment: decide(&shard.assignment),
                    }])
                    .await
                    .expect("the primary's transaction");
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
}

fn invalid(r: Result<chirp_cluster::admin::FailoverReport, Error>) -> String {
    match r {
        Err(Error::Invalid(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_handover_carried_out_by_the_primary_is_reported() {
    let (plane, _regs) = cluster().await;
    let acting = primary(Arc::clone(&plane), |a| {
        let h = a.handover.as_ref().expect("asked");
        assert_eq!(h.to, "n2", "the sync replica by default");
        assert_eq!(h.timeout_ms, 5000);
        a.handed_over(&h.to)
    });
    let report = planned_failover(&*plane, 0, None, Duration::from_secs(5))
        .await
        .expect("handed over");
    acting.await.expect("primary");
    assert_eq!(
        (
            report.shard,
            report.from.as_str(),
            report.to.as_str(),
            report.epoch
        ),
        (0, "n1", "n2", 4)
    );
    let now = plane.read_map().await.expect("map").shards[&0].clone();
    assert_eq!(now.mod_revision, report.revision);
    assert_eq!(now.assignment.primary, "n2");
    assert_eq!(
        now.assignment.replicas,
        vec!["n3".to_string(), "n1".to_string()]
    );
    assert_eq!(now.assignment.sync, vec!["n1".to_string()]);
    assert_eq!(now.assignment.handover, None);
}

#[tokio::test]
async fn a_handover_the_primary_calls_off_is_an_error() {
    let (plane, _regs) = cluster().await;
    let acting = primary(Arc::clone(&plane), |a| ShardAssignment {
        handover: None,
        ..a.clone()
    });
    let why = invalid(planned_failover(&*plane, 0, Some("n3"), Duration::from_secs(5)).await);
    acting.await.expect("primary");
    assert!(why.contains("called the handover off"), "{why}");
    let now = plane.read_map().await.expect("map").shards[&0].clone();
    assert_eq!(
        (now.assignment.epoch, now.assignment.primary.as_str()),
        (3, "n1")
    );
}

#[tokio::test]
async fn a_request_nobody_acts_on_is_withdrawn() {
    let (plane, _regs) = cluster().await;
    let why = invalid(planned_failover(&*plane, 0, None, Duration::from_millis(100)).await);
    assert!(why.contains("did not act on the handover"), "{why}");
    let now = plane.read_map().await.expect("map").shards[&0].clone();
    assert_eq!(now.assignment.handover, None, "no request is left behind");
    assert_eq!(now.assignment.epoch, 3);
}

#[tokio::test]
async fn impossible_handovers_are_refused_and_change_nothing() {
    let (plane, mut regs) = cluster().await;
    let before = plane.read_map().await.expect("map").shards[&0].clone();
    let t = Duration::from_secs(1);
    assert!(
        invalid(planned_failover(&*plane, 0, Some("n1"), t).await).contains("already the primary")
    );
    assert!(invalid(planned_failover(&*plane, 0, Some("n9"), t).await).contains("not a replica"));
    assert!(invalid(planned_failover(&*plane, 7, None, t).await).contains("no shard 7"));

    // A target that is down, then a primary that is down.
    let n3 = regs.pop().expect("n3");
    plane.expire_lease(n3.lease());
    n3.abandon();
    assert!(invalid(planned_failover(&*plane, 0, Some("n3"), t).await).contains("not alive"));
    let n2 = regs.pop().expect("n2");
    let n1 = regs.pop().expect("n1");
    plane.expire_lease(n1.lease());
    n1.abandon();
    let why = invalid(planned_failover(&*plane, 0, None, t).await);
    assert!(why.contains("primary n1 is not alive"), "{why}");
    assert_eq!(plane.read_map().await.expect("map").shards[&0], before);
    drop(n2);

    // A request already pending.
    let (plane, _regs) = cluster().await;
    let mut asked = plane.read_map().await.expect("map").shards[&0].clone();
    asked.assignment.handover = Some(chirp_cluster::Handover {
        to: "n3".into(),
        timeout_ms: 1000,
    });
    plane
        .update_shards(&[ShardUpdate {
            id: 0,
            expected_mod_revision: asked.mod_revision,
            assignment: asked.assignment,
        }])
        .await
        .expect("pending");
    let why = invalid(planned_failover(&*plane, 0, Some("n2"), t).await);
    assert!(why.contains("already under way"), "{why}");
}

#[tokio::test]
async fn force_promote_needs_consent_a_dead_primary_and_a_live_replica() {
    use chirp_cluster::admin::force_promote;
    let (plane, mut regs) = cluster().await;
    let refused = |r: Result<chirp_cluster::admin::ForcePromoteReport, Error>| match r {
        Err(Error::Invalid(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert!(refused(force_promote(&*plane, 0, "n3", false).await).contains("--accept-data-loss"));
    assert!(refused(force_promote(&*plane, 0, "n3", true).await).contains("is alive"));
    let n1 = regs.remove(0);
    plane.expire_lease(n1.lease());
    n1.abandon();
    assert!(refused(force_promote(&*plane, 0, "n9", true).await).contains("not a replica"));
    let report = force_promote(&*plane, 0, "n3", true).await.expect("forced");
    assert_eq!((report.to.as_str(), report.epoch), ("n3", 4));
    let now = plane.read_map().await.expect("map").shards[&0]
        .assignment
        .clone();
    assert_eq!(now.primary, "n3");
    assert!(now.sync.is_empty(), "built afresh by the new primary");
    assert_eq!(now.replicas, vec!["n2".to_string(), "n1".to_string()]);
}
