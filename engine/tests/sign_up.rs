//! Sign-up is two idempotent steps on two shards (the profile on the user's, the handle claim
//! on the handle's): racing sign-ups for one handle leave exactly one account and no profile
//! that no handle reaches.

use std::sync::Arc;

use chirp_engine::{Error, NewUser, Node, NodeConfig};

#[test]
fn racing_sign_ups_for_one_handle_leave_one_account() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = NodeConfig::new(dir.path());
    config.sync_writes = false;
    config.password_hash_slots = 8;
    let node = Arc::new(Node::open(config).expect("open"));
    for round in 0..3 {
        let handle = format!("racer{round}");
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let node = Arc::clone(&node);
                let handle = handle.clone();
                std::thread::spawn(move || {
                    node.sign_up(NewUser {
                        handle,
                        password: format!("password number {i}"),
                        display_name: None,
                    })
                })
            })
            .collect();
        let results: Vec<_> = threads
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect();
        let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        for r in &results {
            if let Err(e) = r {
                assert!(
                    matches!(
                        e,
                        Error::Conflict {
                            field: "handle",
                            ..
                        }
                    ),
                    "round {round}: {e:?}"
                );
            }
        }
        assert_eq!(
            node.resolve_user(&format!("@{handle}")).expect("resolve"),
            winners[0].id
        );
    }
    // Every stored profile is reachable: the losers' profiles were removed.
    let report = node.verify(&mut |_| {}).expect("verify");
    assert_eq!(report.users, 3, "{report:?}");
    assert_eq!(report.problems, 0, "{report:?}");
}
