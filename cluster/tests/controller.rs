//! The controller's rules on the in-memory control plane, with a probe that answers as each
//! test says: deterministic interleavings of deaths, probes and a deposed controller.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chirp_cluster::controller::{Controller, Policy, Probe};
use chirp_cluster::{
    ClusterConfig, ControlPlane, Error, Member, MemberState, MemoryControlPlane, NodeInfo,
    Registration, ShardAssignment, ShardUpdate,
};

/// Answers for each node: whether it answers a direct probe, and its (epoch, LSN) per shard.
#[derive(Default)]
struct Nodes {
    answers: Mutex<BTreeMap<String, bool>>,
    positions: Mutex<BTreeMap<(String, u32), (u64, u64)>>,
}

#[async_trait]
impl Probe for Nodes {
    async fn answers(&self, name: &str, _api: &str) -> bool {
        self.answers
            .lock()
            .unwrap()
            .get(name)
            .copied()
            .unwrap_or(false)
    }
    async fn position(&self, name: &str, _api: &str, shard: u32) -> Option<(u64, u64)> {
        self.positions
            .lock()
            .unwrap()
            .get(&(name.to_string(), shard))
            .copied()
    }
}

fn info(name: &str) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        api: format!("{name}:1"),
        admin: format!("{name}:2"),
        repl: Some(format!("{name}:3")),
        started_at_ms: 1,
        software: "test".into(),
    }
}

/// Nodes n1..n<count>, all members and registered; shard 0: n1 primary, n2 and n3 replicas,
/// sync as given.
async fn cluster(
    count: usize,
    sync: &[&str],
) -> (MemoryControlPlane, BTreeMap<String, Registration>) {
    let plane = MemoryControlPlane::new("c").expect("plane");
    plane
        .create_config(&ClusterConfig {
            shards: 1,
            rf: 3,
            min_sync: sync.len() as u32,
        })
        .await
        .expect("config");
    let mut regs = BTreeMap::new();
    for i in 1..=count {
        let name = format!("n{i}");
        regs.insert(
            name.clone(),
            plane
                .register(&info(&name), Duration::from_secs(10))
                .await
                .expect("register"),
        );
        plane
            .put_member(&Member {
                name: name.clone(),
                api: format!("{name}:1"),
                admin: format!("{name}:2"),
                repl: Some(format!("{name}:3")),
                state: MemberState::Active,
            })
            .await
            .expect("member");
    }
    plane
        .update_shards(&[ShardUpdate {
            id: 0,
            expected_mod_revision: 0,
            assignment: ShardAssignment {
                epoch: 4,
                primary: "n1".into(),
                replicas: vec!["n2".into(), "n3".into()],
                sync: sync.iter().map(|s| s.to_string()).collect(),
                learners: vec![],
                handover: None,
                moving: None,
            },
        }])
        .await
        .expect("shard");
    (plane, regs)
}

fn kill(plane: &MemoryControlPlane, regs: &mut BTreeMap<String, Registration>, name: &str) {
    let reg = regs.remove(name).expect("registered");
    assert!(plane.expire_lease(reg.lease()));
    reg.abandon();
}

async fn elected(
    plane: &MemoryControlPlane,
    regs: &BTreeMap<String, Registration>,
    name: &str,
) -> u64 {
    let c = plane
        .campaign(name, regs[name].lease())
        .await
        .expect("campaign");
    assert_eq!(c.name, name);
    c.term
}

async fn shard0(plane: &MemoryControlPlane) -> ShardAssignment {
    plane.read_map().await.expect("map").shards[&0]
        .assignment
        .clone()
}

#[tokio::test]
async fn a_dead_primary_is_replaced_by_its_most_advanced_sync_member() {
    let (plane, mut regs) = cluster(4, &["n2", "n3"]).await;
    let term = elected(&plane, &regs, "n4").await;
    let nodes = Nodes::default();
    nodes.positions.lock().unwrap().extend([
        (("n2".to_string(), 0), (4, 90)),
        (("n3".to_string(), 0), (4, 120)),
    ]);
    let controller = Controller {
        plane: &plane,
        probe: &nodes,
        policy: Policy::default(),
    };
    // Nobody dead: nothing to do.
    assert_eq!(
        controller.round(term).await.expect("round").failed_over,
        vec![]
    );

    kill(&plane, &mut regs, "n1");
    let round = controller.round(term).await.expect("round");
    assert_eq!(round.failed_over, vec![(0, "n1".into(), "n3".into(), 5)]);
    let a = shard0(&plane).await;
    assert_eq!((a.epoch, a.primary.as_str()), (5, "n3"));
    assert_eq!(a.replicas, vec!["n2".to_string(), "n1".to_string()]);
    assert_eq!(
        a.sync,
        vec!["n2".to_string()],
        "the new primary leaves the sync set"
    );
    // Done once: the next round finds a live primary.
    assert_eq!(
        controller.round(term).await.expect("round").failed_over,
        vec![]
    );
}

#[tokio::test]
async fn an_expired_primary_that_answers_is_left_alone() {
    let (plane, mut regs) = cluster(4, &["n2"]).await;
    let term = elected(&plane, &regs, "n4").await;
    let nodes = Nodes::default();
    nodes.answers.lock().unwrap().insert("n1".into(), true);
    nodes
        .positions
        .lock()
        .unwrap()
        .insert(("n2".into(), 0), (4, 10));
    kill(&plane, &mut regs, "n1");
    let controller = Controller {
        plane: &plane,
        probe: &nodes,
        policy: Policy::default(),
    };
    let round = controller.round(term).await.expect("round");
    assert!(round.failed_over.is_empty());
    assert_eq!(shard0(&plane).await.primary, "n1");
}

#[tokio::test]
async fn without_a_live_sync_member_the_shard_stays_unavailable() {
    let (plane, mut regs) = cluster(4, &["n2"]).await;
    let term = elected(&plane, &regs, "n4").await;
    let nodes = Nodes::default();
    // n3 is alive and answers, but is not in the sync set: it may lack acknowledged writes.
    nodes
        .positions
        .lock()
        .unwrap()
        .insert(("n3".into(), 0), (4, 999));
    kill(&plane, &mut regs, "n1");
    kill(&plane, &mut regs, "n2");
    // Two of four dead is over a third: first the pause.
    let controller = Controller {
        plane: &plane,
        probe: &nodes,
        policy: Policy::default(),
    };
    assert!(controller.round(term).await.expect("round").paused);
    // With a fifth member alive it is a third or less, and the shard is stranded.
    let (plane, mut regs) = cluster(7, &["n2"]).await;
    let term = elected(&plane, &regs, "n4").await;
    kill(&plane, &mut regs, "n1");
    kill(&plane, &mut regs, "n2");
    let controller = Controller {
        plane: &plane,
        probe: &nodes,
        policy: Policy::default(),
    };
    let round = controller.round(term).await.expect("round");
    assert_eq!(
        (round.failed_over.len(), round.stranded.clone()),
        (0, vec![0])
    );
    assert_eq!(shard0(&plane).await.primary, "n1");
}

#[tokio::test]
async fn a_controller_deposed_mid_round_writes_nothing() {
    let (plane, mut regs) = cluster(7, &["n2"]).await;
    let old = elected(&plane, &regs, "n4").await;
    let nodes = Nodes::default();
    nodes
        .positions
        .lock()
        .unwrap()
        .insert(("n2".into(), 0), (4, 10));
    kill(&plane, &mut regs, "n1");
    // n4 loses its lease (deposed) after deciding to act; n5 is elected meanwhile.
    kill(&plane, &mut regs, "n4");
    let new = elected(&plane, &regs, "n5").await;
    assert_ne!(old, new);
    let controller = Controller {
        plane: &plane,
        probe: &nodes,
        policy: Policy::default(),
    };
    let deposed = controller.round(old).await;
    assert!(
        matches!(deposed, Err(Error::NotController { .. })),
        "{deposed:?}"
    );
    assert_eq!(
        shard0(&plane).await.epoch,
        4,
        "nothing written by the deposed controller"
    );
    let round = controller.round(new).await.expect("round");
    assert_eq!(round.failed_over, vec![(0, "n1".into(), "n2".into(), 5)]);
}

/// A learner becomes a replica once it is alive and within the policy's lag of its live
/// primary, not before; it joins no sync set by this.
#[tokio::test]
async fn a_caught_up_learner_becomes_a_replica() {
    let (plane, mut regs) = cluster(5, &["n2"]).await;
    let term = elected(&plane, &regs, "n2").await;
    let mut a = shard0(&plane).await;
    a.learners = vec!["n4".into(), "n5".into()];
    let revision = plane.read_map().await.expect("map").shards[&0].mod_revision;
    plane
        .update_shards(&[ShardUpdate {
            id: 0,
            expected_mod_revision: revision,
            assignment: a,
        }])
        .await
        .expect("learners");
    let nodes = Nodes::default();
    nodes.positions.lock().unwrap().extend([
        (("n1".to_string(), 0), (4, 200)),
        (("n4".to_string(), 0), (4, 100)),
        (("n5".to_string(), 0), (4, 199)),
    ]);
    // n5 is caught up but dead: a dead node is nobody's replica.
    kill(&plane, &mut regs, "n5");
    nodes.answers.lock().unwrap().insert("n5".into(), true);
    let controller = Controller {
        plane: &plane,
        probe: &nodes,
        policy: Policy {
            learner_lag: 64,
            ..Policy::default()
        },
    };
    // n5's registration is gone, so the round goes to failovers (none: n1 lives) first;
    // with everyone registered, learners are looked at.
    let round = controller.round(term).await.expect("round");
    assert!(round.promoted.is_empty(), "{round:?}");
    regs.insert(
        "n5".into(),
        plane
            .register(&info("n5"), Duration::from_secs(10))
            .await
            .expect("register again"),
    );
    // n4 is 100 behind: still a learner; n5 is 1 behind: a replica.
    let round = controller.round(term).await.expect("round");
    assert_eq!(round.promoted, vec![(0, "n5".to_string())]);
    let a = shard0(&plane).await;
    assert_eq!(a.learners, vec!["n4".to_string()]);
    assert_eq!(
        a.replicas,
        vec!["n2".to_string(), "n3".to_string(), "n5".to_string()]
    );
    assert_eq!(a.sync, vec!["n2".to_string()], "no sync set change");
    assert_eq!(a.epoch, 4, "no epoch change");
    // n4 catches up.
    nodes
        .positions
        .lock()
        .unwrap()
        .insert(("n4".into(), 0), (4, 150));
    let round = controller.round(term).await.expect("round");
    assert_eq!(round.promoted, vec![(0, "n4".to_string())]);
    assert!(shard0(&plane).await.learners.is_empty());
}
