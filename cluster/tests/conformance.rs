//! One conformance suite, run against both control planes: `memory::*` on
//! `MemoryControlPlane`, `etcd::*` on `EtcdControlPlane` with a real etcd started per test
//! (`chirp_testkit::etcd`). Each check is a function over a [`Harness`]; the macro at the end
//! runs every one against each implementation, so they cannot drift apart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chirp_cluster::admin::{add_nodes, Status};
use chirp_cluster::{
    ClusterConfig, ControlPlane, Error, EtcdControlPlane, Member, MemberState, MemoryControlPlane,
    NodeInfo, Registration, ShardAssignment, ShardUpdate,
};
use chirp_testkit::etcd::Etcd;

/// What a check needs besides the control plane itself.
#[async_trait]
trait Harness: Send + Sync {
    /// The control plane under test.
    fn plane(&self) -> Arc<dyn ControlPlane>;
    /// A second, independent client of the same store and cluster.
    async fn other(&self) -> Arc<dyn ControlPlane>;
    /// The lease TTL the checks register with.
    fn ttl(&self) -> Duration;
    /// Makes the registration lapse as after a crash (keep-alives stop, the lease runs
    /// out) and returns once the node is gone.
    async fn lapse(&self, reg: Registration);
    /// Waits more than a TTL (a no-op where time plays no part).
    async fn wait_past_ttl(&self);
}

struct Memory {
    plane: MemoryControlPlane,
}

#[async_trait]
impl Harness for Memory {
    fn plane(&self) -> Arc<dyn ControlPlane> {
        Arc::new(self.plane.clone())
    }
    async fn other(&self) -> Arc<dyn ControlPlane> {
        Arc::new(self.plane.clone())
    }
    fn ttl(&self) -> Duration {
        Duration::from_secs(1)
    }
    async fn lapse(&self, reg: Registration) {
        let lease = reg.lease();
        reg.abandon();
        assert!(self.plane.expire_lease(lease));
    }
    async fn wait_past_ttl(&self) {}
}

struct Real {
    etcd: Etcd,
    plane: EtcdControlPlane,
}

impl Real {
    async fn start() -> Real {
        let etcd = tokio::task::spawn_blocking(Etcd::start)
            .await
            .expect("etcd starts");
        let plane = EtcdControlPlane::connect(std::slice::from_ref(&etcd.url), "test")
            .await
            .expect("connects");
        Real { etcd, plane }
    }
}

#[async_trait]
impl Harness for Real {
    fn plane(&self) -> Arc<dyn ControlPlane> {
        Arc::new(self.plane.clone())
    }
    async fn other(&self) -> Arc<dyn ControlPlane> {
        Arc::new(
            EtcdControlPlane::connect(std::slice::from_ref(&self.etcd.url), "test")
                .await
                .expect("connects"),
        )
    }
    fn ttl(&self) -> Duration {
        Duration::from_secs(1)
    }
    async fn lapse(&self, reg: Registration) {
        let name = reg.node().to_string();
        reg.abandon();
        let plane = self.plane();
        eventually("the lapsed node to go", || {
            let plane = Arc::clone(&plane);
            let name = name.clone();
            async move { !alive(&*plane, &name).await }
        })
        .await;
    }
    async fn wait_past_ttl(&self) {
        tokio::time::sleep(self.ttl() * 3).await;
    }
}

async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn alive(plane: &dyn ControlPlane, name: &str) -> bool {
    plane
        .live_nodes()
        .await
        .expect("lists nodes")
        .iter()
        .any(|n| n.name == name)
}

fn node(name: &str, port: u16) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        api: format!("127.0.0.1:{port}"),
        admin: format!("127.0.0.1:{}", port + 1),
        repl: Some(format!("127.0.0.1:{}", port + 2)),
        started_at_ms: 1,
        software: "test".into(),
    }
}

fn member(name: &str, state: MemberState) -> Member {
    Member {
        name: name.into(),
        api: "127.0.0.1:1".into(),
        admin: "127.0.0.1:2".into(),
        repl: None,
        state,
    }
}

fn shard(primary: &str, epoch: u64) -> ShardAssignment {
    ShardAssignment {
        epoch,
        primary: primary.into(),
        replicas: vec!["b".into()],
        sync: vec!["b".into()],
        learners: vec![],
        handover: None,
        moving: None,
    }
}

fn update(id: u32, expected: u64, assignment: ShardAssignment) -> ShardUpdate {
    ShardUpdate {
        id,
        expected_mod_revision: expected,
        assignment,
    }
}

// ---- the checks ----

async fn config_is_created_once(h: &dyn Harness) {
    let plane = h.plane();
    assert_eq!(plane.config().await.expect("reads"), None);
    let bad = ClusterConfig {
        shards: 2000,
        ..ClusterConfig::default()
    };
    assert!(matches!(
        plane.create_config(&bad).await,
        Err(Error::Invalid(_))
    ));
    assert_eq!(plane.config().await.expect("reads"), None);
    let config = ClusterConfig {
        shards: 16,
        rf: 2,
        min_sync: 1,
    };
    let rev = plane.create_config(&config).await.expect("creates");
    assert!(rev > 0);
    assert_eq!(plane.config().await.expect("reads"), Some(config));
    let again = h
        .other()
        .await
        .create_config(&ClusterConfig::default())
        .await;
    assert!(
        matches!(again, Err(Error::ConfigExists { .. })),
        "{again:?}"
    );
    assert_eq!(plane.config().await.expect("reads"), Some(config));
}

async fn members_are_put_and_listed(h: &dyn Harness) {
    let plane = h.plane();
    plane
        .put_member(&member("n2", MemberState::Active))
        .await
        .expect("puts");
    plane
        .put_member(&member("n1", MemberState::Active))
        .await
        .expect("puts");
    plane
        .put_member(&member("n2", MemberState::Draining))
        .await
        .expect("replaces");
    let members = plane.members().await.expect("lists");
    assert_eq!(
        members,
        vec![
            member("n1", MemberState::Active),
            member("n2", MemberState::Draining)
        ]
    );
    let bad = member("a/b", MemberState::Active);
    assert!(matches!(
        plane.put_member(&bad).await,
        Err(Error::Invalid(_))
    ));
}

async fn a_registration_lives_with_its_handle(h: &dyn Harness) {
    let plane = h.plane();
    let reg = plane
        .register(&node("n1", 1000), h.ttl())
        .await
        .expect("registers");
    assert_eq!(reg.node(), "n1");
    assert_eq!(
        plane.live_nodes().await.expect("lists"),
        vec![node("n1", 1000)]
    );
    let twice = h.other().await.register(&node("n1", 2000), h.ttl()).await;
    assert!(
        matches!(twice, Err(Error::AlreadyRegistered { .. })),
        "{:?}",
        twice.err()
    );
    // Keep-alives hold it past its TTL.
    h.wait_past_ttl().await;
    assert!(alive(&*plane, "n1").await, "kept alive past the TTL");
    reg.close().await.expect("revokes");
    assert!(!alive(&*plane, "n1").await, "gone as soon as closed");
    let reg = plane
        .register(&node("n1", 3000), h.ttl())
        .await
        .expect("free again");
    drop(reg);
    eventually("a dropped registration to go", || {
        let plane = Arc::clone(&plane);
        async move { !alive(&*plane, "n1").await }
    })
    .await;
}

async fn a_lapsed_lease_takes_the_node_away(h: &dyn Harness) {
    let plane = h.plane();
    let keep = plane
        .register(&node("n1", 1000), h.ttl())
        .await
        .expect("registers");
    let crash = plane
        .register(&node("n2", 2000), h.ttl())
        .await
        .expect("registers");
    h.lapse(crash).await;
    let live: Vec<String> = plane
        .live_nodes()
        .await
        .expect("lists")
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(live, vec!["n1"]);
    let again = plane
        .register(&node("n2", 2000), h.ttl())
        .await
        .expect("the name is free");
    again.close().await.expect("revokes");
    keep.close().await.expect("revokes");
}

async fn the_map_is_read_at_one_revision(h: &dyn Harness) {
    let plane = h.plane();
    plane
        .create_config(&ClusterConfig::default())
        .await
        .expect("creates");
    plane
        .put_member(&member("a", MemberState::Active))
        .await
        .expect("puts");
    let _reg = plane
        .register(&node("a", 1000), h.ttl())
        .await
        .expect("registers");
    let rev = plane
        .update_shards(&[update(0, 0, shard("a", 1)), update(1, 0, shard("a", 1))])
        .await
        .expect("creates shards");
    let map = plane.read_map().await.expect("reads");
    assert!(map.revision >= rev);
    assert_eq!(map.config, Some(ClusterConfig::default()));
    assert_eq!(map.members.keys().collect::<Vec<_>>(), vec!["a"]);
    assert_eq!(map.nodes.get("a"), Some(&node("a", 1000)));
    assert_eq!(map.shards.len(), 2);
    for (id, s) in &map.shards {
        assert_eq!(s.id, *id);
        // One transaction, one revision.
        assert_eq!(s.mod_revision, rev);
        assert_eq!(s.assignment, shard("a", 1));
    }
}

async fn shard_updates_compare_mod_revisions(h: &dyn Harness) {
    let plane = h.plane();
    let first = plane
        .update_shards(&[update(0, 0, shard("a", 1)), update(1, 0, shard("a", 1))])
        .await
        .expect("creates");
    let again = plane.update_shards(&[update(0, 0, shard("x", 9))]).await;
    assert!(
        matches!(&again, Err(Error::Conflict { shards }) if shards == &vec![0]),
        "{again:?}"
    );
    let second = plane
        .update_shards(&[update(0, first, shard("c", 2))])
        .await
        .expect("a fresh revision wins");
    assert!(second > first);
    // One stale, one fresh: nothing is written.
    let mixed = plane
        .update_shards(&[
            update(0, first, shard("d", 3)),
            update(1, first, shard("d", 3)),
        ])
        .await;
    assert!(
        matches!(&mixed, Err(Error::Conflict { shards }) if shards == &vec![0]),
        "{mixed:?}"
    );
    let map = plane.read_map().await.expect("reads");
    assert_eq!(map.shards[&0].assignment, shard("c", 2));
    assert_eq!(map.shards[&0].mod_revision, second);
    assert_eq!(map.shards[&1].assignment, shard("a", 1));
    assert_eq!(map.shards[&1].mod_revision, first);
    let twice = plane
        .update_shards(&[update(2, 0, shard("a", 1)), update(2, 0, shard("a", 1))])
        .await;
    assert!(matches!(twice, Err(Error::Invalid(_))));
    let out_of_range = plane.update_shards(&[update(1024, 0, shard("a", 1))]).await;
    assert!(matches!(out_of_range, Err(Error::Invalid(_))));
    assert!(!plane
        .read_map()
        .await
        .expect("reads")
        .shards
        .contains_key(&2));
}

async fn racing_writers_one_wins(h: &dyn Harness) {
    let plane = h.plane();
    let rev = plane
        .update_shards(&[update(5, 0, shard("a", 1))])
        .await
        .expect("creates");
    let mut tasks = Vec::new();
    for i in 0..6 {
        let client = if i % 2 == 0 {
            h.plane()
        } else {
            h.other().await
        };
        tasks.push(tokio::spawn(async move {
            client
                .update_shards(&[update(5, rev, shard(&format!("w{i}"), 2))])
                .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.expect("joins") {
            Ok(_) => wins += 1,
            Err(Error::Conflict { shards }) => assert_eq!(shards, vec![5]),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(wins, 1);
}

async fn a_watch_reports_every_change_after_its_start(h: &dyn Harness) {
    let plane = h.plane();
    let start = plane.read_map().await.expect("reads").revision;
    // A change between the read and the watch is not missed.
    let early = plane
        .put_member(&member("a", MemberState::Active))
        .await
        .expect("puts");
    let mut watch = plane.watch(start).await.expect("watches");
    let seen = tokio::time::timeout(Duration::from_secs(10), watch.changed())
        .await
        .expect("in time")
        .expect("a change");
    assert!(seen >= early, "{seen} < {early}");
    let shards = h
        .other()
        .await
        .update_shards(&[update(0, 0, shard("a", 1))])
        .await
        .expect("creates");
    let mut last = seen;
    while last < shards {
        last = tokio::time::timeout(Duration::from_secs(10), watch.changed())
            .await
            .expect("in time")
            .expect("a change");
    }
    assert_eq!(last, shards);
    // A node going away is a change too.
    let reg = plane
        .register(&node("a", 1000), h.ttl())
        .await
        .expect("registers");
    h.lapse(reg).await;
    let after_lapse = plane.read_map().await.expect("reads").revision;
    while last < after_lapse {
        last = tokio::time::timeout(Duration::from_secs(10), watch.changed())
            .await
            .expect("in time")
            .expect("a change");
    }
    // Nothing new: no notice.
    let quiet = tokio::time::timeout(Duration::from_millis(300), watch.changed()).await;
    assert!(quiet.is_err(), "no change, no notice: {quiet:?}");
}

async fn adding_the_first_nodes_creates_the_map(h: &dyn Harness) {
    let plane = h.plane();
    let names: Vec<String> = ["n1", "n2", "n3"].map(String::from).to_vec();
    let missing = add_nodes(&*plane, &names).await;
    assert!(
        matches!(missing, Err(Error::NoConfig { .. })),
        "{missing:?}"
    );
    plane
        .create_config(&ClusterConfig::default())
        .await
        .expect("creates");
    let not_running = add_nodes(&*plane, &names).await;
    assert!(
        matches!(not_running, Err(Error::Invalid(_))),
        "{not_running:?}"
    );
    let mut regs = Vec::new();
    for (i, name) in ["n1", "n2", "n3", "n4"].iter().enumerate() {
        regs.push(
            plane
                .register(&node(name, 1000 * (i as u16 + 1)), h.ttl())
                .await
                .expect("registers"),
        );
    }
    let report = add_nodes(&*plane, &names).await.expect("adds");
    assert_eq!(report.added, names);
    assert_eq!(report.shards_created, 64);
    let later = add_nodes(&*h.other().await, &["n4".to_string()])
        .await
        .expect("adds");
    assert_eq!(later.shards_created, 0);
    let status = Status::of(&plane.read_map().await.expect("reads"));
    assert_eq!(status.controller, None);
    assert_eq!(status.nodes.len(), 4);
    assert!(status
        .nodes
        .iter()
        .all(|n| n.alive && n.state == Some(MemberState::Active)));
    assert_eq!(status.nodes[0].api, "127.0.0.1:1000");
    assert_eq!(status.shards.len(), 64);
    for s in &status.shards {
        assert!(s.primary != "n4" && !s.replicas.contains(&"n4".to_string()));
        assert_eq!(s.replicas.len(), 2);
        assert_eq!(s.sync, s.replicas[..1].to_vec());
    }
    let json = serde_json::to_value(&status).expect("json");
    let keys: Vec<&String> = json.as_object().expect("object").keys().collect();
    assert_eq!(keys, vec!["controller", "nodes", "revision", "shards"]);
}

async fn a_whole_large_map_is_one_transaction(h: &dyn Harness) {
    let plane = h.plane();
    let plan = chirp_cluster::initial_placement(1024, 3, 1, &["a".into(), "b".into(), "c".into()]);
    let updates: Vec<ShardUpdate> = plan
        .into_iter()
        .enumerate()
        .map(|(id, a)| update(id as u32, 0, a))
        .collect();
    let rev = plane
        .update_shards(&updates)
        .await
        .expect("writes 1024 shards");
    let map = plane.read_map().await.expect("reads");
    assert_eq!(map.shards.len(), 1024);
    assert!(map.shards.values().all(|s| s.mod_revision == rev));
}

async fn one_controller_at_a_time_and_a_deposed_one_writes_nothing(h: &dyn Harness) {
    let plane = h.plane();
    let other = h.other().await;
    let n1 = plane
        .register(&node("n1", 1000), h.ttl())
        .await
        .expect("n1");
    let n2 = other
        .register(&node("n2", 2000), h.ttl())
        .await
        .expect("n2");
    assert!(plane.read_map().await.expect("map").controller.is_none());

    // n1 wins; n2's campaign finds it holding the election.
    let won = plane.campaign("n1", n1.lease()).await.expect("campaigns");
    assert_eq!(won.name, "n1");
    let lost = other.campaign("n2", n2.lease()).await.expect("campaigns");
    assert_eq!(lost, won);
    assert_eq!(
        plane.read_map().await.expect("map").controller,
        Some(won.clone())
    );

    // The controller's transactions go through with its term, and only with it.
    let rev = plane
        .update_shards_as(won.term, &[update(0, 0, shard("n1", 1))])
        .await
        .expect("the controller writes");
    let wrong = plane
        .update_shards_as(won.term + 1000, &[update(0, rev, shard("n2", 2))])
        .await;
    assert!(
        matches!(wrong, Err(Error::NotController { .. })),
        "{wrong:?}"
    );

    // n1's lease lapses: the election is over, n2 wins a new term, and whatever n1 (the
    // deposed controller) writes with its old term is refused, changing nothing.
    h.lapse(n1).await;
    assert!(plane.read_map().await.expect("map").controller.is_none());
    let next = other.campaign("n2", n2.lease()).await.expect("campaigns");
    assert_eq!(next.name, "n2");
    assert_ne!(next.term, won.term);
    let deposed = plane
        .update_shards_as(won.term, &[update(0, rev, shard("n1", 2))])
        .await;
    assert!(
        matches!(deposed, Err(Error::NotController { .. })),
        "{deposed:?}"
    );
    let map = plane.read_map().await.expect("map");
    assert_eq!(map.shards[&0].assignment.epoch, 1, "nothing was written");
    other
        .update_shards_as(next.term, &[update(0, rev, shard("n2", 2))])
        .await
        .expect("the new controller writes");
    // A shard that moved on is a conflict, as for any writer.
    let stale = other
        .update_shards_as(next.term, &[update(0, rev, shard("n2", 3))])
        .await;
    assert!(matches!(stale, Err(Error::Conflict { .. })), "{stale:?}");

    // Resigning ends only the term given: a stale term changes nothing; n2's own ends its
    // election while its lease lives on, and the next campaign wins a new term.
    plane.resign(won.term).await.expect("resign");
    assert_eq!(
        plane.read_map().await.expect("map").controller,
        Some(next.clone())
    );
    other.resign(next.term).await.expect("resign");
    assert!(plane.read_map().await.expect("map").controller.is_none());
    let third = other.campaign("n2", n2.lease()).await.expect("campaigns");
    assert_eq!(third.name, "n2");
    assert_ne!(third.term, next.term);
    n2.close().await.expect("revokes");
}

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $check() {
                    let h = super::Memory {
                        plane: super::MemoryControlPlane::new("test").expect("a name"),
                    };
                    super::$check(&h).await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let h = super::Real::start().await;
                    super::$check(&h).await;
                }
            )*
        }
    };
}

conformance!(
    config_is_created_once,
    members_are_put_and_listed,
    a_registration_lives_with_its_handle,
    a_lapsed_lease_takes_the_node_away,
    the_map_is_read_at_one_revision,
    shard_updates_compare_mod_revisions,
    racing_writers_one_wins,
    a_watch_reports_every_change_after_its_start,
    adding_the_first_nodes_creates_the_map,
    a_whole_large_map_is_one_transaction,
    one_controller_at_a_time_and_a_deposed_one_writes_nothing,
);

/// etcd only: clusters sharing one etcd never see each other's keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_on_one_etcd_are_apart() {
    let h = Real::start().await;
    let other = EtcdControlPlane::connect(std::slice::from_ref(&h.etcd.url), "test2")
        .await
        .expect("connects");
    h.plane
        .create_config(&ClusterConfig::default())
        .await
        .expect("creates");
    assert_eq!(other.config().await.expect("reads"), None);
    other
        .create_config(&ClusterConfig::default())
        .await
        .expect("its own");
    let _reg = other
        .register(&node("n1", 1), Duration::from_secs(5))
        .await
        .expect("registers");
    assert!(h.plane.live_nodes().await.expect("lists").is_empty());
    let map = h.plane.read_map().await.expect("reads");
    assert!(map.nodes.is_empty() && map.members.is_empty());
}

/// etcd only: an unreachable etcd is a clear error, not a hang.
#[tokio::test]
async fn an_unreachable_etcd_is_an_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let started = Instant::now();
    let res = EtcdControlPlane::connect(&[format!("http://127.0.0.1:{port}")], "test").await;
    assert!(matches!(res, Err(Error::Unavailable(_))), "{:?}", res.err());
    assert!(started.elapsed() < Duration::from_secs(30));
}
