//! `chirp-load run`: logs in a sample of the synthetic users, then drives a running node with
//! a workload mix for a fixed time, closed-loop or at a constant rate, after the same client
//! has measured the baseline (`GET /health`) the same way. Fan-out lag is sampled alongside.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use indicatif::ProgressBar;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};
use crate::load::client::Conn;
use crate::load::generate::{Probe, Sidecar};
use crate::load::network::{self, Zipf};
use crate::load::report::{LagSummary, PhaseReport, RunReport};
use crate::load::stats::{OpStats, Stats};
use crate::load::workload::{self, Mix, Session};

/// How requests are paced.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Each connection sends its next request as soon as the last one is answered.
    Closed,
    /// Requests are scheduled at a fixed total rate (per second) over the connections, and
    /// latency counts from the scheduled time, so queueing shows (no coordinated omission).
    Open(f64),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The node's address.
    pub addr: SocketAddr,
    /// The generated network.
    pub sidecar: Sidecar,
    /// The workload.
    pub mix: Mix,
    /// Pacing.
    pub mode: Mode,
    /// Connections (one request in flight on each).
    pub connections: usize,
    /// Users to log in and act as.
    pub sessions: usize,
    /// Measured time per phase.
    pub duration: Duration,
    /// Unmeasured time before each phase.
    pub warmup: Duration,
    /// Measure the baseline first.
    pub baseline: bool,
    /// Sample fan-out lag during the main phase.
    pub lag: bool,
    /// The node's process id, to sample its resident memory.
    pub server_pid: Option<u32>,
    /// Random seed.
    pub seed: u64,
}

/// Runs the baseline and the main phase; returns the report.
pub async fn run(cfg: RunConfig) -> Result<RunReport> {
    let wanted = sample_users(cfg.sidecar.params.users, cfg.sessions, cfg.seed);
    let sessions = Arc::new(log_in_all(&cfg, &wanted).await?);
    let baseline = if cfg.baseline {
        let hello = Mix::named("hello")?;
        Some(phase(&cfg, &hello, &sessions, "baseline (GET /health)").await?)
    } else {
        None
    };
    let lag_task = if cfg.lag && !cfg.sidecar.probes.is_empty() {
        let probes = log_in_probes(&cfg).await?;
        let stop = Instant::now() + cfg.warmup + cfg.duration;
        Some(tokio::spawn(sample_lag(cfg.addr, probes, stop)))
    } else {
        None
    };
    let rss = cfg
        .server_pid
        .map(|pid| tokio::spawn(sample_rss(pid, cfg.warmup + cfg.duration)));
    let main = phase(&cfg, &cfg.mix, &sessions, &format!("mix {}", cfg.mix.name)).await?;
    let lag = match lag_task {
        Some(t) => t.await.map_err(|e| Error::Http(e.to_string()))?,
        None => Vec::new(),
    };
    let server_rss_kib = match rss {
        Some(t) => t.await.ok().flatten(),
        None => None,
    };
    Ok(RunReport::new(&cfg, baseline, main, lag, server_rss_kib))
}

/// The users a run acts as: `sessions` drawn from `users` by `seed`, sorted, without repeats
/// (the Redis peer and `chirp-load tokens` draw the same ones).
pub fn sample_users(users: usize, sessions: usize, seed: u64) -> Vec<usize> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut wanted: Vec<usize> = (0..sessions.clamp(1, users.max(1)))
        .map(|_| rng.gen_range(0..users.max(1)))
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    wanted
}

/// Logs in the users a run with these settings acts as; returns their sessions.
pub async fn sessions(cfg: &RunConfig) -> Result<Vec<Session>> {
    let wanted = sample_users(cfg.sidecar.params.users, cfg.sessions, cfg.seed);
    log_in_all(cfg, &wanted).await
}

pub(crate) async fn log_in(conn: &mut Conn, password: &str, index: usize) -> Result<Session> {
    let body = serde_json::json!({"handle": network::handle(index), "password": password});
    let reply = conn
        .send(
            Method::POST,
            "/sessions",
            None,
            Some(Bytes::from(body.to_string())),
        )
        .await?;
    if !reply.ok() {
        return Err(Error::Status {
            what: format!("log in as u{index}"),
            status: reply.status,
            body: String::from_utf8_lossy(&reply.body[..reply.body.len().min(200)]).into(),
        });
    }
    let v: serde_json::Value = serde_json::from_slice(&reply.body)?;
    let field = |k: &str| v[k].as_str().map(str::to_string);
    match (field("user_id"), field("token")) {
        (Some(user_id), Some(token)) => Ok(Session {
            index,
            user_id,
            token,
        }),
        _ => Err(Error::Http(format!("log-in reply without token: {v}"))),
    }
}

/// Logs in every wanted user over a few connections (argon2 makes each log-in slow).
async fn log_in_all(cfg: &RunConfig, wanted: &[usize]) -> Result<Vec<Session>> {
    let pb = ProgressBar::new(wanted.len() as u64).with_message("logging in");
    let parallel = 4.min(wanted.len()).max(1);
    let mut tasks = Vec::new();
    for part in 0..parallel {
        let mine: Vec<usize> = wanted
            .iter()
            .copied()
            .skip(part)
            .step_by(parallel)
            .collect();
        let (addr, password, pb) = (cfg.addr, cfg.sidecar.password.clone(), pb.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(addr).await?;
            let mut out = Vec::new();
            for i in mine {
                out.push(log_in(&mut conn, &password, i).await?);
                pb.inc(1);
            }
            Ok::<_, Error>(out)
        }));
    }
    let mut sessions = Vec::new();
    for t in tasks {
        sessions.extend(t.await.map_err(|e| Error::Http(e.to_string()))??);
    }
    pb.finish_and_clear();
    Ok(sessions)
}

/// One measured phase of `mix` over `cfg.connections` connections.
async fn phase(
    cfg: &RunConfig,
    mix: &Mix,
    sessions: &Arc<Vec<Session>>,
    what: &str,
) -> Result<PhaseReport> {
    let total = cfg.warmup + cfg.duration;
    let pb = ProgressBar::new(total.as_secs().max(1)).with_message(what.to_string());
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + cfg.warmup;
    let end = measure_from + cfg.duration;
    let mut tasks = Vec::new();
    for j in 0..cfg.connections.max(1) {
        let (mix, sessions) = (mix.clone(), Arc::clone(sessions));
        let (addr, users, mode, conns) = (
            cfg.addr,
            cfg.sidecar.params.users,
            cfg.mode,
            cfg.connections.max(1),
        );
        let tags = Zipf::new(cfg.sidecar.params.hashtags.max(1), 1.0);
        let seed = cfg.seed ^ (j as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(addr).await?;
            let mut rng = StdRng::seed_from_u64(seed);
            let mut stats = Stats::default();
            let mut k: u64 = 0;
            loop {
                let scheduled = match mode {
                    Mode::Closed => Instant::now().max(start),
                    Mode::Open(rate) => {
                        let at = (k as f64 * conns as f64 + j as f64) / rate.max(1e-3);
                        start + Duration::from_secs_f64(at)
                    }
                };
                k += 1;
                if scheduled >= end {
                    break;
                }
                tokio::time::sleep_until(scheduled.into()).await;
                let op = mix.pick(&mut rng);
                let me = &sessions[rng.gen_range(0..sessions.len())];
                let call = workload::call(op, me, users, &tags, &mut rng);
                let token = call.auth.then_some(me.token.as_str());
                let result = conn.send(call.method, &call.path, token, call.body).await;
                if scheduled < measure_from {
                    continue;
                }
                let s = stats.op(op.name());
                match result {
                    Ok(r) if r.ok() => s.ok(scheduled.elapsed()),
                    _ => s.errors += 1,
                }
            }
            Ok::<_, Error>(stats)
        }));
    }
    let ticker = {
        let pb = pb.clone();
        tokio::spawn(async move {
            while Instant::now() < end {
                tokio::time::sleep(Duration::from_secs(1)).await;
                pb.inc(1);
            }
        })
    };
    let mut stats = Stats::default();
    for t in tasks {
        stats.merge(&t.await.map_err(|e| Error::Http(e.to_string()))??);
    }
    ticker.abort();
    pb.finish_and_clear();
    Ok(PhaseReport::new(what, &stats, cfg.duration.as_secs_f64()))
}

struct ProbeSessions {
    probe: Probe,
    author: Session,
    follower: Session,
}

async fn log_in_probes(cfg: &RunConfig) -> Result<Vec<ProbeSessions>> {
    let mut conn = Conn::connect(cfg.addr).await?;
    let mut out = Vec::new();
    for p in &cfg.sidecar.probes {
        out.push(ProbeSessions {
            author: log_in(&mut conn, &cfg.sidecar.password, p.author).await?,
            follower: log_in(&mut conn, &cfg.sidecar.password, p.follower).await?,
            probe: p.clone(),
        });
    }
    Ok(out)
}

/// Round-robin over the probes until `stop`: post as the author, then poll the follower's
/// first feed page every 2 ms until the tweet is there (or 10 s pass).
async fn sample_lag(
    addr: SocketAddr,
    probes: Vec<ProbeSessions>,
    stop: Instant,
) -> Vec<LagSummary> {
    let mut stats: Vec<(OpStats, u64)> = probes.iter().map(|_| (OpStats::default(), 0)).collect();
    let Ok(mut conn) = Conn::connect(addr).await else {
        return Vec::new();
    };
    'outer: while Instant::now() < stop {
        for (i, p) in probes.iter().enumerate() {
            if Instant::now() >= stop {
                break 'outer;
            }
            let body = serde_json::json!({"text": format!("lag probe for {}", p.probe.class)});
            let posted = conn
                .send(
                    Method::POST,
                    "/tweet",
                    Some(&p.author.token),
                    Some(Bytes::from(body.to_string())),
                )
                .await;
            let acked = Instant::now();
            let id = match posted.ok().filter(|r| r.ok()) {
                Some(r) => serde_json::from_slice::<serde_json::Value>(&r.body)
                    .ok()
                    .and_then(|v| v["id"].as_str().map(str::to_string)),
                None => None,
            };
            let Some(id) = id else {
                stats[i].1 += 1;
                continue;
            };
            let needle = format!("\"id\":\"{id}\"");
            let seen = loop {
                if acked.elapsed() > Duration::from_secs(10) {
                    break false;
                }
                match conn
                    .send(Method::GET, "/feed?limit=20", Some(&p.follower.token), None)
                    .await
                {
                    Ok(r)
                        if r.ok()
                            && r.body.windows(needle.len()).any(|w| w == needle.as_bytes()) =>
                    {
                        break true
                    }
                    Ok(r) if r.ok() => tokio::time::sleep(Duration::from_millis(2)).await,
                    _ => break false,
                }
            };
            if seen {
                stats[i].0.ok(acked.elapsed());
            } else {
                stats[i].1 += 1;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    probes
        .iter()
        .zip(stats)
        .map(|(p, (s, failed))| LagSummary::new(&p.probe, &s, failed))
        .collect()
}

/// The largest VmRSS of `pid` seen over `span`, sampled every 500 ms.
async fn sample_rss(pid: u32, span: Duration) -> Option<u64> {
    let end = Instant::now() + span;
    let mut max = None;
    while Instant::now() < end {
        if let Some(kib) = vm_rss_kib(pid) {
            max = Some(max.unwrap_or(0).max(kib));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    max
}

/// A process's resident set size from /proc, KiB.
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
