//! Replication per shard: two cluster nodes each hold both shards, each the primary of one and
//! a replica of the other, following it from the other node. Writes flow both ways, and one
//! shard is promoted on the node that followed it while the other shard is untouched.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chirp_engine::ids::shard_of_handle;
use chirp_engine::{NewTweet, NewUser, Node, NodeConfig};
use chirp_replication::{AckMode, Config, Replication};

const SHARDS: usize = 2;

fn open(dir: &std::path::Path) -> Arc<Node> {
    let mut c = NodeConfig::new(dir);
    c.shards = SHARDS;
    c.cluster = Some("per-shard".into());
    c.hold = Some((0..SHARDS).collect());
    c.block_cache_bytes = 8 << 20;
    c.sync_writes = false;
    Arc::new(Node::open(c).expect("open node"))
}

fn config(root: &std::path::Path, name: &str) -> Config {
    let tls = root.join(format!("{name}-tls"));
    chirp_replication::tls::issue_node_cert(&root.join("ca"), name, &[], &tls).expect("cert");
    Config {
        node_name: name.into(),
        cluster: "per-shard".into(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        api: String::new(),
        tls_dir: tls,
        primary: None,
        ack: AckMode::Async,
        sync_timeout: Duration::from_secs(5),
        oplog_retain: u64::MAX / 2,
        data_dir: root.join(format!("{name}-data")),
    }
}

/// Signs up a user whose handle claim lives on `shard` (the shard the node is primary of).
fn sign_up(node: &Node, prefix: &str, shard: usize) -> u64 {
    let handle = (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|h| shard_of_handle(&h.to_ascii_lowercase(), SHARDS) == shard)
        .expect("a handle");
    node.sign_up(NewUser {
        handle,
        password: "a long enough password".into(),
        display_name: None,
        email: None,
    })
    .expect("sign up")
    .id
}

fn post(node: &Node, author: u64, text: &str) -> u64 {
    let t = NewTweet {
        text: text.into(),
        ..NewTweet::default()
    };
    node.post_tweet(author, t).expect("post").id
}

/// Whether `copy` holds exactly what `primary` holds of `shard`, tweet `id` included. A
/// replica copy is compared by digest: reading it through the engine on a cluster node goes
/// to the shard's primary. The oplog counts from where both still hold it (each trims its
/// own).
fn same_copy(copy: &Node, primary: &Node, shard: usize, id: u64) -> bool {
    let (Ok(c), Ok(p)) = (copy.oldest_lsn(shard), primary.oldest_lsn(shard)) else {
        return false;
    };
    let from = c.max(p);
    let (Ok(mine), Ok(theirs)) = (copy.digest(shard, from), primary.digest(shard, from)) else {
        return false;
    };
    mine == theirs && primary.placement().of_id(id) == Some(shard)
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_node_is_primary_of_one_shard_and_replica_of_the_other() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    chirp_replication::tls::create_cluster_ca(&root.join("ca")).expect("ca");
    let a = open(&root.join("a-data"));
    let b = open(&root.join("b-data"));
    a.set_shard_primary(0, true).expect("a: 0");
    b.set_shard_primary(1, true).expect("b: 1");
    let ra = Replication::start(Arc::clone(&a), config(root, "a"))
        .await
        .expect("a");
    let rb = Replication::start(Arc::clone(&b), config(root, "b"))
        .await
        .expect("b");
    ra.follow_shard(1, rb.local_addr());
    rb.follow_shard(0, ra.local_addr());
    ra.route_shard(1, rb.local_addr());
    rb.route_shard(0, ra.local_addr());

    // Each node mints users only on the shard it is primary of.
    let on_a = sign_up(&a, "left", 0);
    let on_b = sign_up(&b, "right", 1);
    assert_eq!(a.placement().of_user(on_a), 0);
    assert_eq!(b.placement().of_user(on_b), 1);
    let ta = post(&a, on_a, "written on a");
    let tb = post(&b, on_b, "written on b");
    wait_for("a's tweet on b", || same_copy(&b, &a, 0, ta)).await;
    wait_for("b's tweet on a", || same_copy(&a, &b, 1, tb)).await;
    // A handle claimed on a shard a holds only as a replica is claimed on that shard's
    // primary, b (a step that writes never runs on a replica copy).
    let far = (0..)
        .map(|i| format!("far{i}"))
        .find(|h| shard_of_handle(h, SHARDS) == 1)
        .expect("a handle");
    let a2 = Arc::clone(&a);
    let far_user = tokio::task::spawn_blocking(move || {
        a2.sign_up(NewUser {
            handle: far,
            password: "a long enough password".into(),
            display_name: None,
            email: None,
        })
    })
    .await
    .expect("blocking")
    .expect("sign up with a handle on b's shard");
    assert_eq!(a.placement().of_user(far_user.id), 0);

    let status = ra.status();
    let roles: Vec<&str> = status["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .map(|s| s["role"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(roles, vec!["primary", "replica"], "{status}");
    assert_eq!(
        status["shards"][1]["following"],
        rb.local_addr().to_string()
    );

    // b takes shard 0 over: a new epoch for shard 0 only, and b writes it; shard 1 is
    // untouched (same epoch, b still its primary, a still following it).
    let before = b.log_position(1).expect("pos").epoch;
    let epoch = rb.promote_shard(0).await.expect("promote 0");
    assert!(epoch > a.log_position(0).expect("pos").epoch);
    assert_eq!(b.log_position(1).expect("pos").epoch, before);
    assert!(b.is_primary_of(0) && b.is_primary_of(1));
    let later = post(&b, on_a, "shard 0 written on b");
    assert_eq!(b.tweet(later).expect("tweet").author_id, on_a);
    let tb2 = post(&b, on_b, "shard 1 still replicated to a");
    wait_for("b's shard-1 tweet on a", || same_copy(&a, &b, 1, tb2)).await;

    ra.shutdown().await;
    rb.shutdown().await;
}

/// Opens a cluster node holding only `hold`, primary of each.
fn open_holding(dir: &std::path::Path, hold: Vec<usize>) -> Arc<Node> {
    let mut c = NodeConfig::new(dir);
    c.shards = SHARDS;
    c.cluster = Some("per-shard".into());
    c.hold = Some(hold.clone());
    c.block_cache_bytes = 8 << 20;
    c.sync_writes = false;
    let node = Arc::new(Node::open(c).expect("open node"));
    for s in hold {
        node.set_shard_primary(s, true).expect("primary");
    }
    node
}

/// Cluster node `name` holding no shard yet, its replication started (its writes wait up to
/// `sync_timeout` for their sync set): plans give it its parts.
async fn planned_node(
    root: &std::path::Path,
    name: &str,
    sync_timeout: Duration,
) -> (Arc<Node>, Arc<Replication>) {
    let node = open_holding(&root.join(format!("{name}-data")), vec![]);
    let mut c = config(root, name);
    c.sync_timeout = sync_timeout;
    let repl = Replication::start(Arc::clone(&node), c)
        .await
        .expect("replication");
    (node, repl)
}

/// The same plan for both shards: `part`, the primary at `primary`, `epoch`, sync set
/// `sync` (its size the minimum).
fn plan_both(
    part: chirp_replication::Part,
    primary: Option<std::net::SocketAddr>,
    epoch: u64,
    sync: &[&str],
) -> [chirp_replication::ShardPlan; 2] {
    [0, 1].map(|shard| chirp_replication::ShardPlan {
        shard,
        epoch,
        sync: sync.iter().map(|s| s.to_string()).collect(),
        min_sync: sync.len(),
        part,
        primary,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_reach_shards_held_by_the_other_node() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    chirp_replication::tls::create_cluster_ca(&root.join("ca")).expect("ca");
    let a = open_holding(&root.join("a-data"), vec![0]);
    let b = open_holding(&root.join("b-data"), vec![1]);
    let ra = Replication::start(Arc::clone(&a), config(root, "a"))
        .await
        .expect("a");
    let rb = Replication::start(Arc::clone(&b), config(root, "b"))
        .await
        .expect("b");
    ra.route_shard(1, rb.local_addr());
    rb.route_shard(0, ra.local_addr());

    // Engine calls block on the network: run them where blocking is fine.
    let (a2, b2) = (Arc::clone(&a), Arc::clone(&b));
    tokio::task::spawn_blocking(move || {
        let (a, b) = (a2, b2);
        // Handles claim on whichever node holds their shard, both ways.
        let left = sign_up(&a, "left", 1);
        let right = sign_up(&b, "right", 0);
        assert_eq!(a.placement().of_user(left), 0);
        let taken = b.sign_up(NewUser {
            handle: (0..)
                .map(|i| format!("left{i}"))
                .find(|h| shard_of_handle(h, SHARDS) == 1)
                .expect("handle"),
            password: "a long enough password".into(),
            display_name: None,
            email: None,
        });
        assert!(
            matches!(
                taken,
                Err(chirp_engine::Error::Conflict {
                    field: "handle",
                    ..
                })
            ),
            "{taken:?}"
        );
        // left (on a) follows right (on b); right's post reaches left's feed on a.
        a.follow(left, left, right).expect("follow");
        assert_eq!(b.profile(right).expect("right").followers_count, 1);
        let t = post(&b, right, "across the wire #quic");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let feed = a
                .home_feed(
                    left,
                    chirp_engine::PageRequest {
                        after: None,
                        limit: 10,
                    },
                )
                .expect("feed");
            if feed.items.iter().any(|x| x.id == t) {
                break;
            }
            assert!(Instant::now() < deadline, "the post never reached the feed");
            std::thread::sleep(Duration::from_millis(20));
        }
        let found = a
            .search(
                chirp_engine::TagQuery::Tag("quic".into()),
                chirp_engine::PageRequest {
                    after: None,
                    limit: 10,
                },
            )
            .expect("search");
        assert_eq!(found.items.len(), 1);
        // A shard nobody routes to is held elsewhere, said so.
        assert!(matches!(
            a.profile(right + 1_000_000_007),
            Err(chirp_engine::Error::NotFound(_)) | Err(chirp_engine::Error::NotHere(_))
        ));
    })
    .await
    .expect("blocking part");
    ra.shutdown().await;
    rb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_take_the_parts_a_plan_gives_them() {
    use chirp_replication::{Part, ShardPlan};
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    chirp_replication::tls::create_cluster_ca(&root.join("ca")).expect("ca");
    let a = open_holding(&root.join("a-data"), vec![]);
    let b = open_holding(&root.join("b-data"), vec![]);
    let ra = Replication::start(Arc::clone(&a), config(root, "a"))
        .await
        .expect("a");
    let rb = Replication::start(Arc::clone(&b), config(root, "b"))
        .await
        .expect("b");
    let (pa, pb) = (Some(ra.local_addr()), Some(rb.local_addr()));
    // Epoch 1 for the first plan; shard 0 changes hands at the map's epoch 5 (say after
    // changes elsewhere), which the promoted copy takes.
    let plan = |s, part, primary, epoch| ShardPlan {
        shard: s,
        epoch,
        sync: vec![],
        min_sync: 0,
        part,
        primary,
    };
    // a: primary of 0, replica of 1; b the other way round.
    ra.apply_plan(&[plan(0, Part::Primary, pa, 1), plan(1, Part::Replica, pb, 1)])
        .await
        .expect("a's plan");
    rb.apply_plan(&[plan(0, Part::Replica, pa, 1), plan(1, Part::Primary, pb, 1)])
        .await
        .expect("b's plan");
    assert_eq!(a.placement().local_ids(), vec![0, 1]);
    assert!(a.is_primary_of(0) && !a.is_primary_of(1));
    assert!(b.is_primary_of(1) && !b.is_primary_of(0));
    let user = sign_up(&a, "planned", 0);
    let t = post(&a, user, "under the first plan");
    wait_for("the tweet on b", || same_copy(&b, &a, 0, t)).await;
    let epoch = a.log_position(0).expect("pos").epoch;

    // Shard 0 changes hands: a closes its gate and follows b, b (which followed) is promoted.
    ra.apply_plan(&[plan(0, Part::Replica, pb, 5)])
        .await
        .expect("a steps down");
    assert!(!a.is_primary_of(0));
    rb.apply_plan(&[plan(0, Part::Primary, pb, 5)])
        .await
        .expect("b takes over");
    assert!(b.is_primary_of(0));
    assert!(b.log_position(0).expect("pos").epoch > epoch);
    assert_eq!(
        b.log_position(0).expect("pos").epoch,
        5,
        "a promoted copy takes the map's epoch"
    );
    let t2 = post(&b, user, "under the second plan");
    wait_for("b's shard-0 tweet on a", || same_copy(&a, &b, 0, t2)).await;
    // Applying a plan again changes nothing.
    rb.apply_plan(&[plan(0, Part::Primary, pb, 5)])
        .await
        .expect("again");
    assert!(b.is_primary_of(0));
    ra.shutdown().await;
    rb.shutdown().await;
}

/// A peer is who its certificate says: a replica whose Hello names another node is refused
/// (its acknowledgements would count as that node's), and on a cluster node only the
/// members of the map are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_are_the_nodes_their_certificates_name() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    chirp_replication::tls::create_cluster_ca(&root.join("ca")).expect("ca");
    let a = open_holding(&root.join("a-data"), vec![0]);
    let ra = Replication::start(Arc::clone(&a), config(root, "a"))
        .await
        .expect("a");
    let user = sign_up(&a, "certified", 0);
    post(&a, user, "only for the right peers");
    let target = a.log_position(0).expect("pos").last_lsn;
    let caught_up = |n: &Node| n.log_position(0).is_ok_and(|p| p.last_lsn >= target);

    // The members are a, b and c.
    ra.set_members(["a", "b", "c"].map(String::from).into());

    // c, a member, holds a certificate from the CA issued for c, but says it is "b".
    let c = open(&root.join("c-data"));
    let mut impostor = config(root, "c");
    impostor.node_name = "b".into();
    let rc = Replication::start(Arc::clone(&c), impostor)
        .await
        .expect("c");
    rc.follow_shard(0, ra.local_addr());

    // d, certificate and Hello both "d", is not a member: refused too.
    let d = open(&root.join("d-data"));
    let rd = Replication::start(Arc::clone(&d), config(root, "d"))
        .await
        .expect("d");
    rd.follow_shard(0, ra.local_addr());

    // b, a member presenting its own name, is served.
    let b = open(&root.join("b-data"));
    let rb = Replication::start(Arc::clone(&b), config(root, "b"))
        .await
        .expect("b");
    rb.follow_shard(0, ra.local_addr());
    wait_for("b to catch up", || caught_up(&b)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!caught_up(&c), "a replica under a false name was served");
    assert!(!caught_up(&d), "a node that is not a member was served");
    let names: Vec<String> = ra.status()["shards"][0]["replicas"]
        .as_array()
        .expect("replicas")
        .iter()
        .map(|r| r["node"].as_str().expect("node").to_string())
        .collect();
    assert_eq!(names, vec!["b".to_string()]);

    // Admitted once the map names it.
    ra.set_members(["a", "b", "c", "d"].map(String::from).into());
    wait_for("d to catch up once a member", || caught_up(&d)).await;
    for r in [ra, rb, rc, rd] {
        r.shutdown().await;
    }
}

/// A copy that has seen a higher epoch of its shard in the map takes nothing from a primary
/// below it: a replaced primary that missed the change (paused, partitioned) still writes,
/// but none of its writes is acknowledged by this copy, so none can be acknowledged at all
/// while this copy is its sync set. Once the primary holds the map's epoch, it is followed
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_takes_nothing_from_a_primary_below_the_map_epoch() {
    use chirp_replication::Part;
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    chirp_replication::tls::create_cluster_ca(&root.join("ca")).expect("ca");
    let (a, ra) = planned_node(root, "a", Duration::from_secs(1)).await;
    let (b, rb) = planned_node(root, "b", Duration::from_secs(5)).await;
    let pa = Some(ra.local_addr());
    let both = |part, epoch| plan_both(part, pa, epoch, &["b"]);
    ra.apply_plan(&both(Part::Primary, 1)).await.expect("a");
    rb.apply_plan(&both(Part::Replica, 1)).await.expect("b");
    let user = sign_up(&a, "fenced", 0);
    let t = post(&a, user, "at the map's epoch");
    let shard = a.placement().of_id(t).expect("shard");
    let lsn = a.log_position(shard).expect("pos").last_lsn;
    ra.wait_replicated(&[(shard, lsn)])
        .await
        .expect("acknowledged by b");

    // b sees the shard at epoch 3 in the map; a, still at epoch 1, missed it.
    rb.apply_plan(&both(Part::Replica, 3)).await.expect("b");
    let t2 = post(&a, user, "from a primary the map replaced");
    let lsn2 = a.log_position(shard).expect("pos").last_lsn;
    let waited = ra.wait_replicated(&[(shard, lsn2)]).await;
    assert!(
        matches!(waited, Err(chirp_replication::Error::SyncTimeout { .. })),
        "a write of a replaced primary was acknowledged: {waited:?}"
    );
    assert!(
        b.log_position(shard).expect("pos").last_lsn < lsn2,
        "b applied an entry from below the map's epoch"
    );

    // a takes the map's epoch: b follows it again and catches up.
    ra.apply_plan(&both(Part::Primary, 3)).await.expect("a");
    assert_eq!(a.log_position(shard).expect("pos").epoch, 3);
    wait_for("b to catch up at epoch 3", || same_copy(&b, &a, shard, t2)).await;
    // The write made at epoch 1 stays unacknowledged (a no longer leads at that epoch);
    // one made at epoch 3 is acknowledged.
    assert!(matches!(
        ra.wait_replicated(&[(shard, lsn2)]).await,
        Err(chirp_replication::Error::Replaced { .. })
    ));
    let t3 = post(&a, user, "at the map's epoch again");
    let lsn3 = a.log_position(shard).expect("pos").last_lsn;
    ra.wait_replicated(&[(shard, lsn3)])
        .await
        .expect("acknowledged at the map's epoch");
    wait_for("b to hold the epoch-3 write", || {
        same_copy(&b, &a, shard, t3)
    })
    .await;
    ra.shutdown().await;
    rb.shutdown().await;
}

/// A small PNG, different per `seed`.
fn picture(seed: u8) -> Vec<u8> {
    let img =
        image::RgbImage::from_fn(24, 16, |x, y| image::Rgb([x as u8 * 9, y as u8 * 13, seed]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encode");
    out.into_inner()
}

/// Image files travel with their shard: a following copy holds the file of every upload it
/// acknowledged (fetched before it applies the row), and a copy installed from a checkpoint
/// fetches the files its rows name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_files_travel_with_their_shard() {
    use chirp_replication::Part;
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    chirp_replication::tls::create_cluster_ca(&root.join("ca")).expect("ca");
    let (a, ra) = planned_node(root, "a", Duration::from_secs(5)).await;
    let (b, rb) = planned_node(root, "b", Duration::from_secs(5)).await;
    let pa = Some(ra.local_addr());
    let both = |part, sync: &[&str]| plan_both(part, pa, 1, sync);
    ra.apply_plan(&both(Part::Primary, &["b"]))
        .await
        .expect("a");
    rb.apply_plan(&both(Part::Replica, &[])).await.expect("b");
    let user = sign_up(&a, "pictures", 0);
    let mut uploads = Vec::new();
    for seed in 0..3u8 {
        let media = a
            .upload_media(user, "image/png", &picture(seed))
            .expect("upload");
        let shard = a.placement().of_id(media.id).expect("shard");
        let lsn = a.log_position(shard).expect("pos").last_lsn;
        ra.wait_replicated(&[(shard, lsn)])
            .await
            .expect("acknowledged by b");
        // Acknowledged by b: b holds the file, byte for byte.
        let here = a.blob_file(&media.sha256).expect("a's file");
        let there = b
            .blob_file(&media.sha256)
            .expect("b holds the file it acknowledged");
        assert_eq!(here.as_ref(), there.as_ref());
        uploads.push(media);
    }

    // c joins after a trimmed its oplog: it installs a checkpoint, then fetches the files.
    for s in 0..SHARDS {
        let last = a.log_position(s).expect("pos").last_lsn;
        a.trim_oplog(s, last).expect("trim");
    }
    let (c, rc) = planned_node(root, "c", Duration::from_secs(5)).await;
    rc.apply_plan(&both(Part::Replica, &[])).await.expect("c");
    wait_for("c to install a checkpoint and fetch the files", || {
        uploads.iter().all(|m| {
            c.blob_file(&m.sha256)
                .is_ok_and(|f| f.as_ref() == picture_bytes(&a, m))
        })
    })
    .await;
    assert!(
        rc.status()["shards"]
            .as_array()
            .expect("shards")
            .iter()
            .any(|s| s["bootstraps"].as_u64() > Some(0)),
        "c should have bootstrapped from a checkpoint: {}",
        rc.status()
    );
    for r in [ra, rb, rc] {
        r.shutdown().await;
    }
}

fn picture_bytes(node: &Node, media: &chirp_engine::MediaDoc) -> Vec<u8> {
    node.blob_file(&media.sha256)
        .expect("the primary's file")
        .as_ref()
        .to_vec()
}

/// A write waiting for its sync set follows the set as it changes: while a stalled member
/// is in it (alone, or with its replacement while the change is being written to the map)
/// the write waits; once the set is the replacement alone, which has the write, it is
/// acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_write_follows_its_sync_set_as_a_member_is_replaced() {
    use chirp_replication::Part;
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    chirp_replication::tls::create_cluster_ca(&root.join("ca")).expect("ca");
    let (a, ra) = planned_node(root, "a", Duration::from_secs(20)).await;
    let (_b, rb) = planned_node(root, "b", Duration::from_secs(5)).await;
    let (c, rc) = planned_node(root, "c", Duration::from_secs(5)).await;
    let pa = Some(ra.local_addr());
    let both = |part| plan_both(part, pa, 1, &["b"]);
    ra.apply_plan(&both(Part::Primary)).await.expect("a");
    rb.apply_plan(&both(Part::Replica)).await.expect("b");
    rc.apply_plan(&both(Part::Replica)).await.expect("c");
    let user = sign_up(&a, "replaced", 0);
    let first = post(&a, user, "while b keeps up");
    let shard = a.placement().of_id(first).expect("shard");
    let lsn = a.log_position(shard).expect("pos").last_lsn;
    ra.wait_replicated(&[(shard, lsn)])
        .await
        .expect("b acknowledges");

    // b stalls; a write waits for it.
    rb.unfollow_shard(shard).await;
    let t = post(&a, user, "while b is stalled");
    let lsn = a.log_position(shard).expect("pos").last_lsn;
    wait_for("c to hold the write", || {
        c.log_position(shard).is_ok_and(|p| p.last_lsn >= lsn)
    })
    .await;
    let waiting = {
        let ra = Arc::clone(&ra);
        tokio::spawn(async move { ra.wait_replicated(&[(shard, lsn)]).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "acknowledged without b, its sync set"
    );
    // The keeper writes the change: old and new members both, until the map has it.
    ra.set_sync(shard, vec!["b".into(), "c".into()]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "acknowledged while b was still in the set"
    );
    // The map has it: c alone, which holds the write.
    ra.set_sync(shard, vec!["c".into()]);
    tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("acknowledged once c alone is the set")
        .expect("the task")
        .expect("acknowledged");
    wait_for("c to equal a", || same_copy(&c, &a, shard, t)).await;
    for r in [ra, rb, rc] {
        r.shutdown().await;
    }
}

/// A write waiting for its sync set is never acknowledged once its primary has been
/// replaced, whatever the new map's sync set holds. Found by the chaos checker: a primary
/// cut off while a write waited applied, once healed, a map that named a new primary
/// (lacking the write) and, as the new primary's sync set, a replica that had acknowledged
/// the write to the old primary; the old primary's wait, re-reading the set, acknowledged
/// a write the new primary did not have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_primary_acknowledges_no_write_that_was_waiting() {
    use chirp_replication::Part;
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    chirp_replication::tls::create_cluster_ca(&root.join("ca")).expect("ca");
    let (a, ra) = planned_node(root, "a", Duration::from_secs(20)).await;
    let (_b, rb) = planned_node(root, "b", Duration::from_secs(5)).await;
    let (c, rc) = planned_node(root, "c", Duration::from_secs(5)).await;
    let (pa, pb) = (Some(ra.local_addr()), Some(rb.local_addr()));
    let both = |part, primary, epoch, sync| plan_both(part, primary, epoch, &[sync]);
    ra.apply_plan(&both(Part::Primary, pa, 1, "b"))
        .await
        .expect("a");
    rb.apply_plan(&both(Part::Replica, pa, 1, "b"))
        .await
        .expect("b");
    rc.apply_plan(&both(Part::Replica, pa, 1, "b"))
        .await
        .expect("c");
    let user = sign_up(&a, "waiting", 0);
    let first = post(&a, user, "before");
    let shard = a.placement().of_id(first).expect("shard");
    let lsn = a.log_position(shard).expect("pos").last_lsn;
    ra.wait_replicated(&[(shard, lsn)])
        .await
        .expect("b acknowledges");

    // b, the sync member, stalls; a write waits for it; c (not in the set) has it.
    rb.unfollow_shard(shard).await;
    post(&a, user, "waiting for b");
    let lsn = a.log_position(shard).expect("pos").last_lsn;
    wait_for("c to hold the write", || {
        c.log_position(shard).is_ok_and(|p| p.last_lsn >= lsn)
    })
    .await;
    let waiting = {
        let ra = Arc::clone(&ra);
        tokio::spawn(async move { ra.wait_replicated(&[(shard, lsn)]).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished());

    // The map replaces a with b (which lacks the write) at epoch 2, c b's sync set; a
    // learns it.
    rb.apply_plan(&both(Part::Primary, pb, 2, "c"))
        .await
        .expect("b takes over");
    ra.apply_plan(&both(Part::Replica, pb, 2, "c"))
        .await
        .expect("a steps down");
    let outcome = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the wait ends once a is replaced")
        .expect("the task");
    assert!(
        outcome.is_err(),
        "a replaced primary acknowledged a write its successor lacks"
    );
    for r in [ra, rb, rc] {
        r.shutdown().await;
    }
}
