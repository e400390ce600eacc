//! What an attacker can make a node spend: password hashing (argon2, 19 MiB a hash) runs under
//! a fixed number of slots, so a burst of log-ins is queued or refused with 503 + Retry-After
//! instead of taking gigabytes.

mod common;

use common::{data_dir, Chirp};

/// Peak resident memory of a process so far (kB), from /proc.
fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM")
}

#[test]
fn a_burst_of_log_ins_stays_within_a_memory_bound() {
    let (_tmp, dir) = data_dir();
    let node = Chirp::start(&dir, &[]);
    node.user("target");
    let before = peak_rss_kb(node.pid());
    // 200 log-ins at once would hold 200 x 19 MiB (3.8 GiB) if every one hashed at once; with
    // one hashing slot per core they hold a few of those. The bound leaves room for threads
    // and buffers, and is far below what unbounded hashing takes.
    const BOUND_KB: u64 = 256 * 1024;
    let node = std::sync::Arc::new(node);
    let clients: Vec<_> = (0..200)
        .map(|i| {
            let node = std::sync::Arc::clone(&node);
            std::thread::spawn(move || {
                let password = if i % 2 == 0 {
                    "correct horse"
                } else {
                    "wrong horse"
                };
                let body = serde_json::json!({"handle": "target", "password": password});
                node.try_call("POST", "/sessions", None, Some(body))
            })
        })
        .collect();
    let mut statuses = std::collections::BTreeMap::new();
    for c in clients {
        let (status, body) = c.join().expect("client").expect("a response");
        if status == 503 {
            assert_eq!(body["type"], "/problems/unavailable", "{body}");
        }
        *statuses.entry(status).or_insert(0) += 1;
    }
    let grew = peak_rss_kb(node.pid()).saturating_sub(before);
    eprintln!("log-in burst: statuses {statuses:?}, peak RSS grew {grew} kB");
    assert!(
        statuses.keys().all(|s| [200, 401, 503].contains(s)),
        "{statuses:?}"
    );
    assert!(statuses.get(&200).copied().unwrap_or(0) > 0, "{statuses:?}");
    assert!(
        grew < BOUND_KB,
        "peak RSS grew by {grew} kB under 200 log-ins"
    );
    // Refused requests say when to come back.
    let reply = node.send(
        "POST",
        "/sessions",
        None,
        &[("content-type", "application/json")],
        Some(br#"{"handle":"target","password":"correct horse"}"#),
    );
    assert_eq!(reply.status, 200);
}

/// Operator actions are served on the admin listener only: the public port answers 404 for
/// every admin route, even to a loopback client, and the admin listener serves each of them.
#[test]
fn the_public_port_serves_no_admin_route() {
    let (_tmp, dir) = data_dir();
    let node = Chirp::start(&dir, &[]);
    // Routes both listeners have on purpose: sign-up is public, and operators create accounts
    // on the admin listener with the same path.
    const SHARED: &[(&str, &str)] = &[("POST", "/users")];
    let concrete = |pattern: &str| pattern.replace("{user}", "@nobody");
    let legacy = [("POST", "/admin/promote"), ("GET", "/admin/digest")];
    for (method, pattern) in chirp_server::admin::ADMIN_ROUTES.iter().chain(&legacy) {
        let path = concrete(pattern);
        let body = (*method == "POST").then(|| serde_json::json!({}));
        if !SHARED.contains(&(*method, *pattern)) {
            let (status, problem) = node.call(method, &path, None, body.clone());
            assert_eq!(
                (status, problem["type"].as_str()),
                (404, Some("/problems/no-route")),
                "public {method} {path}: {problem}"
            );
        }
        if legacy.contains(&(*method, *pattern)) {
            continue;
        }
        let (status, reply) = node.admin_call(method, &path, body);
        assert_ne!(
            reply["type"].as_str(),
            Some("/problems/no-route"),
            "admin {method} {path} ({status}) is in ADMIN_ROUTES but not served"
        );
    }
}

/// The admin listener answers nobody without its token, which the node keeps in a file only
/// its user can read.
#[test]
fn the_admin_listener_requires_its_token() {
    use std::os::unix::fs::PermissionsExt;
    let (_tmp, dir) = data_dir();
    let node = Chirp::start(&dir, &[]);
    let mode = std::fs::metadata(dir.join("admin.token"))
        .expect("the token file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let agent = ureq::agent();
    for token in [None, Some("not-the-token"), Some("")] {
        let (status, problem) =
            common::try_call(&agent, &node.admin, "GET", "/status", token, None).expect("reply");
        assert_eq!(status, 401, "{token:?}: {problem}");
        assert_eq!(problem["type"], "/problems/unauthenticated");
    }
    let (status, _) = node.admin_call("GET", "/status", None);
    assert_eq!(status, 200);
}
