//! The crash loop: cycles of SIGKILL during concurrent posts, follows, unfollows and profile
//! edits, each followed by a restart on the same data dir and a check of every acknowledged
//! write (`crash_loop/check.rs` lists the rules) and of fan-out to followers' feeds.
//!
//! `CHIRP_CRASH_CYCLES` sets the number of cycles (default 8; the durability goal is 100),
//! `CHIRP_CRASH_SEED` the seed of the client's choices (default a fixed one, so the default
//! suite runs the same short seeded loop every time; `random` picks a fresh one; printed on
//! every run). The seed fixes
//! what the clients send and when the node is killed, not how the threads interleave, so a
//! failing seed reproduces a run of the same shape, not the same bytes.
//!
//! SIGKILL keeps the page cache: this finds writes acknowledged before they reached RocksDB's
//! WAL, recovery that loses or resurrects rows, broken multi-shard edges and counters, and
//! fan-out jobs never resumed; it cannot find a missing fsync (a power cut can).

#[path = "crash_loop/check.rs"]
mod check;
mod common;
#[path = "crash_loop/model.rs"]
mod model;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use common::{data_dir, try_call, Chirp};
use model::{Event, Model, PostState, ProfileState, User, Write};

/// Users of the run (each sign-up costs an argon2 hash).
const USERS: usize = 10;
/// Client threads writing at once; each acts for its own users.
const WRITERS: usize = 4;
/// Follows each user starts with.
const INITIAL_FOLLOWS: usize = 4;
/// Cycles without `CHIRP_CRASH_CYCLES`.
const DEFAULT_CYCLES: usize = 8;
/// Flags of every start: the home cap is far above the tweets a long run posts, so no feed
/// is trimmed and every due tweet must be in it.
const FLAGS: &[&str] = &[
    "--home-cap",
    "1000000",
    // The writers go as fast as the node lets them: no write rate limit here.
    "--writes-per-user-per-minute",
    "0",
];

/// The seed of the default run.
const DEFAULT_SEED: u64 = 20_261_130;

#[test]
fn acknowledged_writes_survive_a_crash_loop() {
    let seed = match std::env::var("CHIRP_CRASH_SEED").as_deref() {
        Ok("random") => rand::thread_rng().gen(),
        _ => env_u64("CHIRP_CRASH_SEED").unwrap_or(DEFAULT_SEED),
    };
    let cycles = env_u64("CHIRP_CRASH_CYCLES").map_or(DEFAULT_CYCLES, |n| n as usize);
    println!("crash loop: seed {seed} (CHIRP_CRASH_SEED), {cycles} cycles (CHIRP_CRASH_CYCLES)");
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let seq = AtomicU64::new(1);
    let (tmp, dir) = data_dir();
    let _keep = KeepOnPanic(Some(tmp));
    let mut node = Chirp::start(&dir, FLAGS);
    let mut model = set_up(&node, &mut rng, &seq);
    let mut checked = 0;
    for cycle in 1..=cycles {
        let traffic = Duration::from_millis(rng.gen_range(100..=700));
        let events = run_traffic(&mut node, &model, &mut rng, &seq, cycle, traffic);
        model.record(cycle, events.events);
        let restarted = Instant::now();
        node = Chirp::start(&dir, FLAGS);
        let findings = check::run(&node, &mut model);
        checked += findings.checked;
        println!(
            "cycle {cycle}: killed after {traffic:?}, {} tweets so far, {} checks, restart and \
             check {:.1} s",
            model.posts.len(),
            findings.checked,
            restarted.elapsed().as_secs_f64()
        );
        let mut problems = events.errors;
        problems.extend(findings.lost.iter().map(|l| format!("lost: {l}")));
        problems.extend(findings.wrong);
        if !problems.is_empty() {
            node.kill();
            let shown = problems.len().min(40);
            panic!(
                "crash loop failed in cycle {cycle} of {cycles}, seed {seed} \
                 (CHIRP_CRASH_SEED={seed} CHIRP_CRASH_CYCLES={cycles}): {} problems, the first \
                 {shown}:\n{}",
                problems.len(),
                problems[..shown].join("\n")
            );
        }
    }
    let found = count_posts(&model, PostState::Found);
    let absent = count_posts(&model, PostState::Absent);
    println!(
        "crash loop: {cycles} cycles, {} writes acknowledged, {checked} checks of acknowledged \
         writes, {} indeterminate ({found} tweets found after restart, {absent} absent), \
         0 lost, {:.1} s, seed {seed}",
        model.acked,
        model.indeterminate,
        started.elapsed().as_secs_f64()
    );
}

/// Keeps the data dir and the node's log (`data.log` beside it) when the test fails.
struct KeepOnPanic(Option<tempfile::TempDir>);

impl Drop for KeepOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(tmp) = self.0.take() {
                eprintln!(
                    "crash loop: data dir and log kept in {}",
                    tmp.keep().display()
                );
            }
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
    )
}

fn count_posts(model: &Model, state: PostState) -> usize {
    model.posts.iter().filter(|p| p.state == state).count()
}

/// Signs the users up, gives each a first profile edit and a few follows.
fn set_up(node: &Chirp, rng: &mut StdRng, seq: &AtomicU64) -> Model {
    let mut model = Model::default();
    for i in 0..USERS {
        let (id, token) = node.user(&format!("crash{i}"));
        model.users.push(User { id, token });
        model.profiles.push(Default::default());
    }
    let mut events = Vec::new();
    for i in 0..USERS {
        let user = &model.users[i];
        let state = profile_state(i, 0, seq.fetch_add(1, Ordering::SeqCst), rng);
        let path = format!("/{}/profile", user.id);
        let (s, p) = node.call("PATCH", &path, Some(&user.token), Some(state.patch()));
        assert_eq!(s, 200, "{p}");
        events.push(Event {
            write: Write::Profile { user: i, state },
            sent: 0,
            done: Some(seq.fetch_add(1, Ordering::SeqCst)),
        });
        let mut others: Vec<usize> = (0..USERS).filter(|&j| j != i).collect();
        for _ in 0..INITIAL_FOLLOWS {
            let j = others.swap_remove(rng.gen_range(0..others.len()));
            let path = format!("/{}/follow/{}", user.id, model.users[j].id);
            let (s, p) = node.call("POST", &path, Some(&user.token), None);
            assert_eq!(s, 200, "{p}");
            events.push(Event {
                write: Write::Edge {
                    follower: i,
                    followee: j,
                    follow: true,
                },
                sent: 0,
                done: Some(seq.fetch_add(1, Ordering::SeqCst)),
            });
        }
    }
    model.record(0, events);
    model
}

fn profile_state(user: usize, cycle: usize, seq: u64, rng: &mut StdRng) -> ProfileState {
    ProfileState {
        display_name: format!("Crash {user} c{cycle} s{seq}"),
        bio: format!("edit {seq} of user {user}, cycle {cycle} — ünïcode ✓"),
        seq,
        tmp: rng.gen_bool(0.5).then(|| format!("t{seq}")),
    }
}

/// What the clients of one cycle logged, and the answers nobody expected.
struct Traffic {
    events: Vec<Event>,
    errors: Vec<String>,
}

/// Runs the writers for `length`, SIGKILLs the node under them and collects their logs.
fn run_traffic(
    node: &mut Chirp,
    model: &Model,
    rng: &mut StdRng,
    seq: &AtomicU64,
    cycle: usize,
    length: Duration,
) -> Traffic {
    let seeds: Vec<u64> = (0..WRITERS).map(|_| rng.gen()).collect();
    let base = node.base.clone();
    let mut out = Traffic {
        events: Vec::new(),
        errors: Vec::new(),
    };
    std::thread::scope(|scope| {
        let writers: Vec<_> = seeds
            .into_iter()
            .enumerate()
            .map(|(w, seed)| {
                let base = &base;
                scope.spawn(move || writer(base, model, w, seed, seq, cycle))
            })
            .collect();
        std::thread::sleep(length);
        if let Some(status) = node.exited() {
            out.errors
                .push(format!("the node died by itself during traffic: {status}"));
        }
        node.kill();
        for handle in writers {
            let traffic = handle.join().expect("writer thread");
            out.events.extend(traffic.events);
            out.errors.extend(traffic.errors);
        }
    });
    out
}

/// One client thread: random writes as the users `w` owns, until a request gets no answer
/// (the node was killed).
fn writer(
    base: &str,
    model: &Model,
    w: usize,
    seed: u64,
    seq: &AtomicU64,
    cycle: usize,
) -> Traffic {
    let mut rng = StdRng::seed_from_u64(seed);
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let mine: Vec<usize> = (0..USERS).filter(|u| u % WRITERS == w).collect();
    let mut out = Traffic {
        events: Vec::new(),
        errors: Vec::new(),
    };
    loop {
        let u = mine[rng.gen_range(0..mine.len())];
        let user = &model.users[u];
        let sent = seq.fetch_add(1, Ordering::SeqCst);
        let pick = rng.gen_range(0..100);
        let (method, path, body, write) = if pick < 50 {
            let text = format!("cycle {cycle} user {u} seq {sent} #crash");
            let write = Write::Post {
                author: u,
                text: text.clone(),
                id: None,
            };
            (
                "POST",
                "/tweet".to_string(),
                Some(json!({"text": text})),
                write,
            )
        } else if pick < 75 {
            let followee = (u + rng.gen_range(1..USERS)) % USERS;
            let follow = rng.gen_bool(0.6);
            let path = format!("/{}/follow/{}", user.id, model.users[followee].id);
            let method = if follow { "POST" } else { "DELETE" };
            let write = Write::Edge {
                follower: u,
                followee,
                follow,
            };
            (method, path, None, write)
        } else {
            let state = profile_state(u, cycle, sent, &mut rng);
            let body = Some(state.patch());
            let write = Write::Profile { user: u, state };
            ("PATCH", format!("/{}/profile", user.id), body, write)
        };
        let answer = try_call(&agent, base, method, &path, Some(&user.token), body);
        let mut event = Event {
            write,
            sent,
            done: None,
        };
        match answer {
            Ok((200 | 201, reply)) => {
                event.done = Some(seq.fetch_add(1, Ordering::SeqCst));
                if let Write::Post { id, .. } = &mut event.write {
                    *id = reply["id"].as_str().map(str::to_string);
                }
                out.events.push(event);
            }
            Ok((status, reply)) => {
                // Counted as unanswered: a failed write may still have done part of its work.
                out.errors
                    .push(format!("{method} {path} -> {status} {reply}"));
                out.events.push(event);
                return out;
            }
            Err(_) => {
                out.events.push(event);
                return out;
            }
        }
    }
}
