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
    // Hashing is what is measured: the wrong-password lockout would refuse most of the burst
    // before it hashes, so it is off here (its own test is below).
    let node = Chirp::start(
        &dir,
        &[
            "--login-failures-per-account",
            "0",
            "--login-failures-per-address",
            "0",
        ],
    );
    node.user("target");
    let before = peak_rss_kb(node.pid());
    // 200 log-ins at once would hold 200 x 19 MiB (3.8 GiB) if every one hashed at once; with
    // one hashing thread per core they hold a few of those. Measured here: 140-320 MiB of
    // growth in all (threads, connections, allocator), against 1.5 GiB when hashes were only
    // capped by a semaphore on the blocking pool. The bound leaves room for that spread and
    // stays far below unbounded hashing.
    const BOUND_KB: u64 = 512 * 1024;
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

/// Guessing passwords is slowed per account: past the allowed failures every log-in to the
/// account gets 429 with Retry-After and RateLimit-* headers, and the right password works
/// once Retry-After has passed.
#[test]
fn wrong_passwords_lock_the_account_out_for_a_while() {
    let (_tmp, dir) = data_dir();
    // 5 failures per 5 s: a cell comes back every second, so the test waits about that.
    let node = Chirp::start(
        &dir,
        &[
            "--login-failures-per-account",
            "5",
            "--login-window-secs",
            "5",
        ],
    );
    node.user("guarded");
    let attempt = |password: &str| {
        let body = format!(r#"{{"handle":"guarded","password":"{password}"}}"#);
        node.send(
            "POST",
            "/sessions",
            None,
            &[("content-type", "application/json")],
            Some(body.as_bytes()),
        )
    };
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..30 {
        let reply = attempt("wrong horse");
        statuses.push(reply.status);
        last = Some(reply);
    }
    assert!(statuses[..5].iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let refused = last.expect("a reply");
    assert_eq!(refused.json()["type"], "/problems/rate-limited");
    let retry: u64 = refused
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=5).contains(&retry), "Retry-After {retry}");
    assert_eq!(refused.header("ratelimit-limit"), Some("5"));
    assert_eq!(refused.header("ratelimit-remaining"), Some("0"));
    // Even the right password waits while the account is locked...
    assert_eq!(attempt("correct horse").status, 429);
    // ...and works after Retry-After.
    std::thread::sleep(std::time::Duration::from_secs(retry));
    assert_eq!(attempt("correct horse").status, 200);
}

/// Sign-ups per address and writes per user are limited too.
#[test]
fn sign_ups_and_writes_are_rate_limited() {
    let (_tmp, dir) = data_dir();
    let node = Chirp::start(
        &dir,
        &[
            "--signups-per-address-per-hour",
            "2",
            "--writes-per-user-per-minute",
            "3",
        ],
    );
    let (_, token) = node.user("first");
    node.user("second");
    let (status, problem) = node.call(
        "POST",
        "/users",
        None,
        Some(serde_json::json!({"handle": "third", "password": "correct horse"})),
    );
    assert_eq!(status, 429, "{problem}");
    let statuses: Vec<u16> = (0..4)
        .map(|i| {
            let body = serde_json::json!({"text": format!("post {i}")});
            node.call("POST", "/tweet", Some(&token), Some(body)).0
        })
        .collect();
    assert_eq!(statuses, vec![201, 201, 201, 429]);
    // Reads are not writes.
    assert_eq!(node.call("GET", "/feed", Some(&token), None).0, 200);
}

/// Nobody can act as another user: every mutating route of the public route table is tried
/// with no token (401) and, where it names someone else's resource, with another user's
/// token (403), and the victim's data is unchanged afterwards. The matrix comes from the
/// route table, so a new route must say here how to fill in its parameters.
#[test]
fn no_mutating_route_acts_for_another_user() {
    let (_tmp, dir) = data_dir();
    let node = Chirp::start(&dir, &[]);
    let (victim, victim_token) = node.user("victim");
    let (_, attacker_token) = node.user("attacker");
    let (third, _) = node.user("third");
    let victim_tweet = node.tweet(&victim_token, "mine alone");
    let (s, _) = node.call(
        "POST",
        &format!("/{victim}/follow/{third}"),
        Some(&victim_token),
        None,
    );
    assert_eq!(s, 200);
    let (_, sessions) = node.call("GET", "/sessions", Some(&victim_token), None);
    let victim_session = sessions["sessions"][0]["id"]
        .as_str()
        .expect("the victim's session id")
        .to_string();
    let before = (
        node.call("GET", &format!("/{victim}/profile"), None, None)
            .1,
        node.call("GET", &format!("/{victim}/following"), None, None)
            .1,
        node.call("GET", &format!("/tweets/{victim_tweet}"), None, None)
            .1,
    );

    // Writes anyone may make without a token, and writes whose only subject is the caller.
    const OPEN: &[(&str, &str)] = &[("POST", "/users"), ("POST", "/sessions")];
    const OWN: &[(&str, &str)] = &[
        ("POST", "/tweet"),
        ("POST", "/media"),
        ("DELETE", "/sessions"),
    ];
    let mut tried = 0;
    for route in chirp_server::routes::ROUTES {
        if !["POST", "PATCH", "PUT", "DELETE"].contains(&route.method) {
            continue;
        }
        let key = (route.method, route.pattern);
        let path = match route.pattern {
            "/{userId}/profile" => format!("/{victim}/profile"),
            "/{userId}/follow/{id}" => format!("/{victim}/follow/{third}"),
            "/tweets/{id}" => format!("/tweets/{victim_tweet}"),
            "/sessions/{id}" => format!("/sessions/{victim_session}"),
            p if !p.contains('{') => p.to_string(),
            p => panic!("say how to fill in the parameters of {} {p}", route.method),
        };
        let body = match route.pattern {
            "/{userId}/profile" => Some(serde_json::json!({"bio": "pwned"})),
            "/tweet" => Some(serde_json::json!({"text": "as someone else"})),
            _ => None,
        };
        if !OPEN.contains(&key) {
            let (status, problem) = node.call(route.method, &path, None, body.clone());
            assert_eq!(
                status, 401,
                "{} {path} without a token: {problem}",
                route.method
            );
            tried += 1;
        }
        if !OPEN.contains(&key) && !OWN.contains(&key) {
            let (status, problem) =
                node.call(route.method, &path, Some(&attacker_token), body.clone());
            // Someone else's session is not even shown to exist.
            let refused = if route.pattern == "/sessions/{id}" {
                404
            } else {
                403
            };
            assert_eq!(
                status, refused,
                "{} {path} as another user: {problem}",
                route.method
            );
            tried += 1;
        }
    }
    assert!(tried >= 8, "only {tried} cases");
    let after = (
        node.call("GET", &format!("/{victim}/profile"), None, None)
            .1,
        node.call("GET", &format!("/{victim}/following"), None, None)
            .1,
        node.call("GET", &format!("/tweets/{victim_tweet}"), None, None)
            .1,
    );
    assert_eq!(before, after, "the victim's data changed");
    assert_eq!(
        node.call("GET", "/feed", Some(&victim_token), None).0,
        200,
        "the victim's session still works"
    );
}
