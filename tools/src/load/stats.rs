//! Per-operation counters and latency histograms (HdrHistogram, microseconds, 3 significant
//! digits), merged across workers.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies recorded up to a minute; slower requests are clamped to it.
const MAX_MICROS: u64 = 60_000_000;

/// What one operation did.
#[derive(Debug, Clone)]
pub struct OpStats {
    /// Latency of successful requests, µs.
    pub hist: Histogram<u64>,
    /// Failed requests (transport errors and non-2xx).
    pub errors: u64,
}

impl Default for OpStats {
    fn default() -> Self {
        OpStats {
            hist: Histogram::new_with_bounds(1, MAX_MICROS, 3)
                .expect("constant bounds: low 1, high > 2 x low, 3 digits"),
            errors: 0,
        }
    }
}

impl OpStats {
    /// Records a success that took `d`.
    pub fn ok(&mut self, d: Duration) {
        let us = (d.as_micros() as u64).clamp(1, MAX_MICROS);
        self.hist.saturating_record(us);
    }

    /// Adds another worker's figures.
    pub fn merge(&mut self, other: &OpStats) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.errors += other.errors;
    }
}

/// Figures of every operation of one phase.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// By operation name.
    pub ops: BTreeMap<&'static str, OpStats>,
}

impl Stats {
    /// The entry of `op`.
    pub fn op(&mut self, op: &'static str) -> &mut OpStats {
        self.ops.entry(op).or_default()
    }

    /// Adds another worker's figures.
    pub fn merge(&mut self, other: &Stats) {
        for (op, s) in &other.ops {
            self.op(op).merge(s);
        }
    }

    /// Summaries over a measured window of `secs`.
    pub fn summary(&self, secs: f64) -> Vec<OpSummary> {
        let mut out: Vec<OpSummary> = self
            .ops
            .iter()
            .map(|(op, s)| OpSummary::new(op, s, secs))
            .collect();
        if out.len() > 1 {
            let mut all = OpStats::default();
            for s in self.ops.values() {
                all.merge(s);
            }
            out.push(OpSummary::new("all", &all, secs));
        }
        out
    }
}

/// One operation's figures, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct OpSummary {
    /// Operation.
    pub op: String,
    /// Successful requests.
    pub ok: u64,
    /// Failed requests.
    pub errors: u64,
    /// Successful requests per second.
    pub rps: f64,
    /// Latency percentiles, ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p999_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
}

impl OpSummary {
    /// Summarizes `s` over `secs`.
    pub fn new(op: &str, s: &OpStats, secs: f64) -> OpSummary {
        let q = |q: f64| s.hist.value_at_quantile(q) as f64 / 1000.0;
        OpSummary {
            op: op.to_string(),
            ok: s.hist.len(),
            errors: s.errors,
            rps: s.hist.len() as f64 / secs.max(1e-9),
            p50_ms: q(0.5),
            p95_ms: q(0.95),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            max_ms: s.hist.max() as f64 / 1000.0,
        }
    }
}
