//! The role recorded in a data dir and the modes tools open it in: a replica's dir never
//! opens as a primary because a flag was left out, and inspecting a dir writes nothing.

use chirp_engine::{Error, ImportSet, NewUser, Node, NodeConfig, NodeRole, OpenMode};

fn config(dir: &std::path::Path, role: NodeRole, mode: OpenMode) -> NodeConfig {
    let mut c = NodeConfig::new(dir);
    c.sync_writes = false;
    c.block_cache_bytes = 8 << 20;
    c.role = role;
    c.mode = mode;
    c
}

fn sign_up(node: &Node, handle: &str) -> Result<u64, Error> {
    node.sign_up(NewUser {
        handle: handle.into(),
        password: "correct horse".into(),
        display_name: None,
        email: None,
    })
    .map(|p| p.id)
}

#[test]
fn a_replicas_dir_stays_a_replica_and_tools_write_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path();
    let node = Node::open(config(path, NodeRole::Primary, OpenMode::Serve)).expect("open");
    sign_up(&node, "alice").expect("a primary takes writes");
    assert_eq!(node.stats().expect("stats").role, "primary");
    node.close().expect("close");

    // Inspecting refuses writes, whatever the role.
    let node = Node::open(config(path, NodeRole::Primary, OpenMode::Inspect)).expect("open");
    assert!(matches!(sign_up(&node, "bob"), Err(Error::NotPrimary(_))));
    assert!(matches!(
        node.import(ImportSet::default(), &()),
        Err(Error::NotPrimary(_))
    ));
    assert!(node.promote().is_err());
    node.close().expect("close");

    // Started as a replica once, the dir is a replica's from then on.
    let node = Node::open(config(path, NodeRole::Replica, OpenMode::Serve)).expect("open");
    node.close().expect("close");
    let node = Node::open(config(path, NodeRole::Primary, OpenMode::Serve)).expect("open");
    assert!(!node.is_writable());
    assert_eq!(node.stats().expect("stats").role, "replica");
    assert!(matches!(sign_up(&node, "bob"), Err(Error::NotPrimary(_))));
    node.close().expect("close");
    let refused = Node::open(config(path, NodeRole::Primary, OpenMode::Maintain));
    assert!(
        matches!(&refused, Err(Error::Invalid { message, .. }) if message.contains("replica")),
        "{:?}",
        refused.err()
    );
    let node = Node::open(config(path, NodeRole::Primary, OpenMode::Inspect)).expect("open");
    assert_eq!(node.stats().expect("stats").role, "replica");
    node.close().expect("close");

    // Promotion makes it a primary, and that is recorded too.
    let node = Node::open(config(path, NodeRole::Primary, OpenMode::Serve)).expect("open");
    node.promote().expect("promote");
    sign_up(&node, "bob").expect("a promoted node takes writes");
    node.close().expect("close");
    let node = Node::open(config(path, NodeRole::Primary, OpenMode::Maintain)).expect("open");
    sign_up(&node, "carol").expect("maintenance writes on a primary's dir");
    node.close().expect("close");

    // A demoted (deposed) primary is recorded as a replica.
    let node = Node::open(config(path, NodeRole::Primary, OpenMode::Serve)).expect("open");
    node.demote("").expect("demote");
    node.close().expect("close");
    let node = Node::open(config(path, NodeRole::Primary, OpenMode::Serve)).expect("open");
    assert!(!node.is_writable());
    node.close().expect("close");
}
