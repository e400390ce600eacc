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
                        email: None,
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

fn signer(handle: &str, email: Option<&str>) -> NewUser {
    NewUser {
        handle: handle.into(),
        password: "a long enough password".into(),
        display_name: None,
        email: email.map(str::to_owned),
    }
}

#[test]
fn an_email_address_logs_in_and_belongs_to_one_account() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = NodeConfig::new(dir.path());
    config.sync_writes = false;
    let node = Node::open(config).expect("open");
    let ada = node
        .sign_up(signer("ada", Some("Ada@Example.com")))
        .expect("sign up");
    // Any case of the address logs in, as the handle does; a wrong password does not.
    for login in ["ada@example.com", "ADA@EXAMPLE.COM", "ada"] {
        let session = node
            .log_in(login, "a long enough password")
            .expect("log in");
        assert_eq!(session.user_id, ada.id, "{login}");
    }
    assert!(matches!(
        node.log_in("ada@example.com", "wrong password!"),
        Err(Error::Unauthenticated(_))
    ));
    assert!(matches!(
        node.log_in("nobody@example.com", "a long enough password"),
        Err(Error::Unauthenticated(_))
    ));
    assert_eq!(
        node.email_of(ada.id).expect("email"),
        Some("ada@example.com".into())
    );

    // The address is taken in any case; the failed sign-up leaves no account behind.
    let taken = node.sign_up(signer("other", Some("ADA@example.COM")));
    assert!(matches!(taken, Err(Error::Conflict { field: "email", .. })));
    assert!(matches!(
        node.resolve_user("@other"),
        Err(Error::NotFound(_))
    ));
    // A taken handle frees the address its sign-up claimed.
    let handle_taken = node.sign_up(signer("ADA", Some("new@example.com")));
    assert!(matches!(
        handle_taken,
        Err(Error::Conflict {
            field: "handle",
            ..
        })
    ));
    let bob = node
        .sign_up(signer("bob", Some("new@example.com")))
        .expect("the address is free again");
    assert_eq!(
        node.log_in("new@example.com", "a long enough password")
            .expect("log in")
            .user_id,
        bob.id
    );
    assert!(matches!(
        node.sign_up(signer("carol", Some("not an address"))),
        Err(Error::Invalid { field: "email", .. })
    ));
    // A password reset keeps the address.
    node.reset_password(bob.id, "another long password")
        .expect("reset");
    assert_eq!(
        node.log_in("new@example.com", "another long password")
            .expect("log in")
            .user_id,
        bob.id
    );
    let report = node.verify(&mut |_| {}).expect("verify");
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}
