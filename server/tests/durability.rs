//! Acknowledged writes survive SIGKILL: a restart on the same data finds them all.

mod common;

use common::{data_dir, newest_first, Chirp};
use serde_json::json;

#[test]
fn acknowledged_writes_survive_sigkill() {
    let (_tmp, dir) = data_dir();
    let mut chirp = Chirp::start(&dir, &[]);
    let (alice, alice_t) = chirp.user("alice");
    let (bob, bob_t) = chirp.user("bob");
    assert_eq!(
        chirp
            .call(
                "POST",
                &format!("/{bob}/follow/{alice}"),
                Some(&bob_t),
                None
            )
            .0,
        200
    );
    let (s, _) = chirp.call(
        "PATCH",
        &format!("/{alice}/profile"),
        Some(&alice_t),
        Some(json!({"bio": "durable", "extra": {"k": 1}})),
    );
    assert_eq!(s, 200);
    let mut ids = Vec::new();
    for i in 0..200 {
        ids.push(chirp.tweet(&alice_t, &format!("tweet number {i} #durable")));
    }
    let deleted = ids.remove(17);
    assert_eq!(
        chirp
            .call(
                "DELETE",
                &format!("/tweets/{deleted}"),
                Some(&alice_t),
                None
            )
            .0,
        204
    );
    // No waiting for fan-out: whatever was pending must resume after the restart.
    chirp.kill();

    let chirp = Chirp::start(&dir, &[]);
    let expected = newest_first(ids.clone());
    assert_eq!(
        chirp.all_ids(&format!("/{alice}/tweets"), None, 100),
        expected
    );
    for id in ids.iter().step_by(20) {
        assert_eq!(
            chirp.call("GET", &format!("/tweets/{id}"), None, None).0,
            200
        );
    }
    assert_eq!(
        chirp
            .call("GET", &format!("/tweets/{deleted}"), None, None)
            .0,
        404
    );
    let (_, p) = chirp.call("GET", &format!("/{alice}/profile"), None, None);
    assert_eq!(p["bio"], "durable");
    assert_eq!(p["extra"], json!({"k": 1}));
    assert_eq!(p["tweet_count"], 199);
    assert_eq!(p["followers_count"], 1);
    // Old tokens still work; the follow edge and the feed are intact.
    let (_, following) = chirp.call("GET", &format!("/{bob}/following"), None, None);
    assert_eq!(following["users"][0]["id"], alice.as_str());
    chirp.eventually("fan-out to resume after the crash", || {
        chirp.all_ids("/feed", Some(&bob_t), 100) == expected
    });
}
