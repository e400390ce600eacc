//! What a run reports: per-operation figures, each also as a ratio to the baseline measured
//! by the same client in the same run, fan-out lag, and the node's memory; as a table or JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::load::generate::{GenerateReport, Probe};
use crate::load::run::{Mode, RunConfig};
use crate::load::stats::{OpStats, OpSummary, Stats};

/// One measured phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    /// What ran.
    pub name: String,
    /// Measured seconds.
    pub secs: f64,
    /// Per operation, then `all` when there are several.
    pub ops: Vec<OpSummary>,
}

impl PhaseReport {
    /// Summarizes a phase.
    pub fn new(name: &str, stats: &Stats, secs: f64) -> PhaseReport {
        PhaseReport {
            name: name.to_string(),
            secs,
            ops: stats.summary(secs),
        }
    }

    /// Successful requests per second over all operations.
    pub fn total_rps(&self) -> f64 {
        self.ops
            .iter()
            .find(|o| o.op == "all")
            .or(self.ops.first())
            .map_or(0.0, |o| o.rps)
    }

    /// Failed requests over all operations.
    pub fn errors(&self) -> u64 {
        self.ops
            .iter()
            .filter(|o| o.op != "all")
            .map(|o| o.errors)
            .sum()
    }

    /// Successful requests over all operations.
    pub fn ok(&self) -> u64 {
        self.ops
            .iter()
            .filter(|o| o.op != "all")
            .map(|o| o.ok)
            .sum()
    }
}

/// Fan-out lag of one probe author: post acknowledged → visible in a follower's first page.
#[derive(Debug, Clone, Serialize)]
pub struct LagSummary {
    /// `typical`, `large` or `celebrity`.
    pub class: String,
    /// The author's followers.
    pub author_followers: u64,
    /// Samples seen.
    pub samples: u64,
    /// Samples not seen within 10 s (or failed posts).
    pub failed: u64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
}

impl LagSummary {
    /// Summarizes a probe's samples.
    pub fn new(p: &Probe, s: &OpStats, failed: u64) -> LagSummary {
        let q = |q: f64| s.hist.value_at_quantile(q) as f64 / 1000.0;
        LagSummary {
            class: p.class.clone(),
            author_followers: p.author_followers,
            samples: s.hist.len(),
            failed,
            p50_ms: q(0.5),
            p99_ms: q(0.99),
            max_ms: s.hist.max() as f64 / 1000.0,
        }
    }
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The mix.
    pub mix: String,
    /// `closed` or `open`.
    pub mode: String,
    /// Target rate of an open-loop run.
    pub rate: Option<f64>,
    /// Connections.
    pub connections: usize,
    /// Users in the network.
    pub users: usize,
    /// Logged-in users acted as.
    pub sessions: usize,
    /// The baseline phase, if measured.
    pub baseline: Option<PhaseReport>,
    /// The mix phase.
    pub main: PhaseReport,
    /// Each operation's requests/s and p50/p99 as ratios to the baseline's.
    pub ratios: Vec<Ratio>,
    /// Fan-out lag per probe author.
    pub fanout_lag: Vec<LagSummary>,
    /// The node's largest resident set seen during the mix phase, KiB.
    pub server_rss_kib: Option<u64>,
}

/// One operation against the baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    /// Operation.
    pub op: String,
    /// Its requests/s ÷ the baseline's.
    pub rps: f64,
    /// Its p50 ÷ the baseline's.
    pub p50: f64,
    /// Its p99 ÷ the baseline's.
    pub p99: f64,
}

impl RunReport {
    /// Assembles the report.
    pub fn new(
        cfg: &RunConfig,
        baseline: Option<PhaseReport>,
        main: PhaseReport,
        fanout_lag: Vec<LagSummary>,
        server_rss_kib: Option<u64>,
    ) -> RunReport {
        let ratios = match baseline.as_ref().and_then(|b| b.ops.first()) {
            Some(b) => main
                .ops
                .iter()
                .map(|o| Ratio {
                    op: o.op.clone(),
                    rps: o.rps / b.rps.max(1e-9),
                    p50: o.p50_ms / b.p50_ms.max(1e-9),
                    p99: o.p99_ms / b.p99_ms.max(1e-9),
                })
                .collect(),
            None => Vec::new(),
        };
        let (mode, rate) = match cfg.mode {
            Mode::Closed => ("closed".to_string(), None),
            Mode::Open(r) => ("open".to_string(), Some(r)),
        };
        RunReport {
            mix: cfg.mix.name.clone(),
            mode,
            rate,
            connections: cfg.connections,
            users: cfg.sidecar.params.users,
            sessions: cfg.sessions,
            baseline,
            main,
            ratios,
            fanout_lag,
            server_rss_kib,
        }
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let rate = self
            .rate
            .map(|r| format!(" at {r:.0} req/s"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "mix {} ({}-loop{rate}, {} connections, {} users, {} sessions, {:.0} s measured)",
            self.mix, self.mode, self.connections, self.users, self.sessions, self.main.secs
        );
        let _ = writeln!(
            out,
            "{:<14} {:>10} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9} {:>9}",
            "op", "req/s", "p50 ms", "p95 ms", "p99 ms", "p99.9", "errors", "rps/base", "p50/base"
        );
        let phases = self.baseline.iter().chain(std::iter::once(&self.main));
        for phase in phases {
            for o in &phase.ops {
                let r = self
                    .ratios
                    .iter()
                    .find(|r| r.op == o.op && phase.name == self.main.name);
                let (rr, rp) = r.map_or(("".into(), "".into()), |r| {
                    (format!("{:.3}", r.rps), format!("{:.2}", r.p50))
                });
                let _ = writeln!(
                    out,
                    "{:<14} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>9} {:>9}",
                    o.op, o.rps, o.p50_ms, o.p95_ms, o.p99_ms, o.p999_ms, o.errors, rr, rp
                );
            }
        }
        for l in &self.fanout_lag {
            let _ = writeln!(
                out,
                "fan-out lag, {} author ({} followers): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples, {} not seen)",
                l.class, l.author_followers, l.p50_ms, l.p99_ms, l.max_ms, l.samples, l.failed
            );
        }
        if let Some(kib) = self.server_rss_kib {
            let _ = writeln!(
                out,
                "node resident memory (max VmRSS): {:.1} MiB",
                kib as f64 / 1024.0
            );
        }
        out
    }
}

/// The human-readable summary of a generation.
pub fn generate_table(r: &GenerateReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} users, {} follow edges, {} tweets; drawn in {:.1} s, imported in {:.1} s, flushed in {:.1} s",
        r.users, r.follows, r.tweets, r.draw_secs, r.import_secs, r.close_secs
    );
    let _ = writeln!(
        out,
        "most followed: {:?}; {} above the celebrity threshold",
        r.top_followers, r.celebrities
    );
    let _ = writeln!(
        out,
        "{:<12} {:>14} {:>12}",
        "column fam.", "rows", "SST MiB"
    );
    for (cf, bytes) in &r.sst_bytes {
        let rows = r.rows.iter().find(|(c, _)| c == cf).map_or(0, |(_, n)| *n);
        let _ = writeln!(
            out,
            "{:<12} {:>14} {:>12.1}",
            cf,
            rows,
            *bytes as f64 / (1 << 20) as f64
        );
    }
    let total: u64 = r.sst_bytes.iter().map(|(_, b)| b).sum();
    let _ = writeln!(
        out,
        "{:<12} {:>14} {:>12.1}",
        "total",
        "",
        total as f64 / (1 << 20) as f64
    );
    out
}
