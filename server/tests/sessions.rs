//! Sessions over HTTP against the real binary: listing your own, ending one, expiry after
//! `--session-lifetime-secs` of disuse (sliding with use), and a password reset ending all.

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::{data_dir, Chirp};

/// Logs `handle` in again; returns (token, session id).
fn log_in(node: &Chirp, handle: &str, password: &str) -> (String, String) {
    let (status, body) = node.call(
        "POST",
        "/sessions",
        None,
        Some(json!({"handle": handle, "password": password})),
    );
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().expect("token").to_string();
    let id = body["session_id"].as_str().expect("session id").to_string();
    assert!(
        !token.contains(&id),
        "the session id must not be part of the token"
    );
    (token, id)
}

fn sessions(node: &Chirp, token: &str) -> Vec<Value> {
    let (status, body) = node.call("GET", "/sessions", Some(token), None);
    assert_eq!(status, 200, "{body}");
    body["sessions"].as_array().expect("sessions").clone()
}

fn works(node: &Chirp, token: &str) -> bool {
    let (status, body) = node.call("GET", "/feed", Some(token), None);
    assert!(status == 200 || status == 401, "{status}: {body}");
    status == 200
}

#[test]
fn your_sessions_are_listed_and_ended_one_at_a_time() {
    let (_tmp, dir) = data_dir();
    let node = Chirp::start(&dir, &[]);
    let (_, first) = node.user("alice");
    let (second, second_id) = log_in(&node, "alice", "correct horse");

    let list = sessions(&node, &second);
    assert_eq!(list.len(), 2, "{list:?}");
    let current: Vec<&Value> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "{list:?}");
    assert_eq!(current[0]["id"], second_id.as_str());
    for s in &list {
        for field in ["created_at", "last_used_at", "expires_at"] {
            assert!(s[field].is_string(), "{field} in {s}");
        }
        assert!(s["expires_at"].as_str() > s["created_at"].as_str(), "{s}");
    }
    let first_id = list
        .iter()
        .find(|s| s["current"] == false)
        .and_then(|s| s["id"].as_str())
        .expect("the other session")
        .to_string();
    // The first token sees the same two sessions, with itself as the current one.
    let seen_by_first = sessions(&node, &first);
    assert!(seen_by_first
        .iter()
        .any(|s| s["id"] == first_id.as_str() && s["current"] == true));

    // Someone else's session id, and ids that are not session ids, are not found.
    let (_, bob) = node.user("bob");
    let (status, body) = node.call("DELETE", &format!("/sessions/{first_id}"), Some(&bob), None);
    assert_eq!(status, 404, "{body}");
    for bad in ["nope", "0000000000000000", &first[..first.len().min(16)]] {
        let (status, body) = node.call("DELETE", &format!("/sessions/{bad}"), Some(&bob), None);
        assert_eq!(status, 404, "{bad}: {body}");
    }
    assert!(
        works(&node, &first),
        "bob's attempt must not end alice's session"
    );
    assert_eq!(sessions(&node, &second).len(), 2);
    assert_eq!(sessions(&node, &bob).len(), 1);

    // Ending the other session: its token stops at once, this one goes on.
    let (status, body) = node.call(
        "DELETE",
        &format!("/sessions/{first_id}"),
        Some(&second),
        None,
    );
    assert_eq!(status, 204, "{body}");
    assert!(!works(&node, &first));
    let list = sessions(&node, &second);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], second_id.as_str());
    let (status, _) = node.call(
        "DELETE",
        &format!("/sessions/{first_id}"),
        Some(&second),
        None,
    );
    assert_eq!(status, 404, "already ended");

    // Logging out still ends the current session.
    let (status, _) = node.call("DELETE", "/sessions", Some(&second), None);
    assert_eq!(status, 204);
    assert!(!works(&node, &second));
    let (status, _) = node.call("GET", "/sessions", Some(&second), None);
    assert_eq!(status, 401);
}

#[test]
fn an_idle_session_expires_and_a_used_one_slides() {
    let (_tmp, dir) = data_dir();
    let node = Chirp::start(&dir, &["--session-lifetime-secs", "3"]);
    let started = Instant::now();
    let (_, idle) = node.user("carol");
    let (active, _) = log_in(&node, "carol", "correct horse");

    // Used every 0.5 s (the refresh interval is a quarter of the lifetime, 0.75 s) for
    // twice the lifetime: every use extends the session, so it never lapses.
    while started.elapsed() < Duration::from_secs(6) {
        assert!(
            works(&node, &active),
            "an active session expired after {:?}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // The idle one, unused since its log-in over 3 s ago, is refused as expired.
    let (status, body) = node.call("GET", "/feed", Some(&idle), None);
    assert_eq!(status, 401, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("expired"),
        "{body}"
    );
    // It is gone from the list (and its rows are removed when it is refused).
    let list = sessions(&node, &active);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["current"], true);
    let (status, _) = node.call("GET", "/feed", Some(&idle), None);
    assert_eq!(status, 401);
}

#[test]
fn a_session_expires_after_the_configured_lifetime() {
    let (_tmp, dir) = data_dir();
    let node = Chirp::start(&dir, &["--session-lifetime-secs", "1"]);
    let (_, token) = node.user("dave");
    let (status, body) = node.call("GET", "/sessions", Some(&token), None);
    assert_eq!(status, 200, "{body}");
    std::thread::sleep(Duration::from_millis(2200));
    let (status, body) = node.call("GET", "/sessions", Some(&token), None);
    assert_eq!(status, 401, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("expired"),
        "{body}"
    );
    // Logging in again works, and the expired session is not listed with the new one.
    let (fresh, fresh_id) = log_in(&node, "dave", "correct horse");
    let list = sessions(&node, &fresh);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], fresh_id.as_str());
}

#[test]
fn a_password_reset_ends_every_session_of_the_user_only() {
    let (_tmp, dir) = data_dir();
    let node = Chirp::start(&dir, &[]);
    let (_, one) = node.user("erin");
    let (two, _) = log_in(&node, "erin", "correct horse");
    let (_, other) = node.user("frank");

    let (status, body) = node.admin_call(
        "POST",
        "/users/@erin/password",
        Some(json!({"password": "new battery staple"})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked_tokens"], 2, "{body}");
    assert!(!works(&node, &one));
    assert!(!works(&node, &two));
    assert!(works(&node, &other), "another user's session survives");

    let (status, _) = node.call(
        "POST",
        "/sessions",
        None,
        Some(json!({"handle": "erin", "password": "correct horse"})),
    );
    assert_eq!(status, 401, "the old password is gone");
    let (fresh, _) = log_in(&node, "erin", "new battery staple");
    assert_eq!(sessions(&node, &fresh).len(), 1);

    // A second reset finds only the session made since.
    let (status, body) = node.admin_call(
        "POST",
        "/users/@erin/password",
        Some(json!({"password": "third password"})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked_tokens"], 1, "{body}");
}
