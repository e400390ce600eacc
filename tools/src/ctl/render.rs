//! Human-readable output: aligned tables and sizes.

use std::fmt::Write;

use chirp_engine::{Account, BackupReport, CompactReport, NodeStats, VerifyReport};

/// A table with a header row; columns are as wide as their widest cell.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|h| h.to_string()).collect()],
        }
    }

    /// Appends a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (cell, width) in row.iter().zip(&widths) {
                let _ = write!(line, "{cell:<width$}  ");
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Bytes in binary units: `0 B`, `1.5 KiB`, `12.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// `chirpctl status`.
pub fn status(s: &NodeStats, remote: bool) -> String {
    let mut out = String::new();
    let uptime = if remote {
        format!(", up {}", duration(s.uptime_seconds))
    } else {
        " (stopped node, opened directly)".to_string()
    };
    let _ = writeln!(out, "chirp {}{uptime}", s.version);
    let _ = writeln!(out, "data dir: {} ({})", s.data_dir, s.role);
    let _ = writeln!(
        out,
        "block cache: {} of {}",
        bytes(s.block_cache.usage_bytes),
        bytes(s.block_cache.capacity_bytes)
    );
    let c = &s.tweet_cache;
    let lookups = c.hits + c.misses;
    let hit_rate = if lookups == 0 {
        "no lookups yet".to_string()
    } else {
        format!("{:.1}% hits", c.hits as f64 * 100.0 / lookups as f64)
    };
    let _ = writeln!(
        out,
        "tweet cache: {} of {}, {} entries, {hit_rate} ({} hits, {} misses)",
        bytes(c.bytes),
        bytes(c.capacity_bytes),
        c.entries,
        c.hits,
        c.misses
    );
    let _ = writeln!(
        out,
        "fan-out: {} pending, {} done, last lag {} ms, {} failed runs, {} retries, {} overflowed\n",
        s.fanout.pending_jobs,
        s.fanout.jobs_done,
        s.fanout.last_lag_ms,
        s.fanout.failures,
        s.fanout.retries,
        s.fanout.overflows
    );
    let mut shards = Table::new(&[
        "SHARD",
        "KEYS (EST.)",
        "SST",
        "PENDING COMPACTION",
        "WRITES",
    ]);
    for shard in &s.shards {
        let writes = if shard.write_stopped {
            "STOPPED".to_string()
        } else if shard.delayed_write_rate > 0 {
            format!("delayed to {}/s", bytes(shard.delayed_write_rate))
        } else {
            "ok".to_string()
        };
        shards.row(vec![
            shard.index.to_string(),
            shard.estimate_keys().to_string(),
            bytes(shard.sst_bytes()),
            bytes(shard.pending_compaction_bytes),
            writes,
            shard.last_lsn.to_string(),
        ]);
    }
    out.push_str(&shards.render());
    out.push('\n');
    let mut cfs = Table::new(&[
        "COLUMN FAMILY",
        "KEYS (EST.)",
        "SST",
        "LIVE DATA",
        "MEMTABLE",
    ]);
    if let Some(first) = s.shards.first() {
        for (i, cf) in first.column_families.iter().enumerate() {
            let sum = |f: &dyn Fn(&chirp_engine::admin::CfStats) -> u64| -> u64 {
                s.shards
                    .iter()
                    .filter_map(|sh| sh.column_families.get(i))
                    .map(f)
                    .sum()
            };
            cfs.row(vec![
                cf.name.clone(),
                sum(&|c| c.estimate_keys).to_string(),
                bytes(sum(&|c| c.sst_bytes)),
                bytes(sum(&|c| c.live_data_bytes)),
                bytes(sum(&|c| c.memtable_bytes)),
            ]);
        }
    }
    out.push_str(&cfs.render());
    out
}

/// `chirpctl compact`.
pub fn compaction(r: &CompactReport) -> String {
    let mut t = Table::new(&["SHARD", "BEFORE", "AFTER"]);
    for s in &r.shards {
        t.row(vec![
            s.shard.to_string(),
            bytes(s.bytes_before),
            bytes(s.bytes_after),
        ]);
    }
    format!(
        "{}compacted {} shard(s) in {} ms: {} -> {}\n",
        t.render(),
        r.shards.len(),
        r.millis,
        bytes(r.bytes_before),
        bytes(r.bytes_after)
    )
}

/// `chirpctl checkpoint` and `restore`.
pub fn backup(what: &str, r: &BackupReport) -> String {
    format!(
        "{what} {}: {} shard(s), {}, {} file(s) copied, {} image file(s) linked, {} ms\n",
        r.dir,
        r.shards,
        bytes(r.bytes),
        r.copied_files,
        r.linked_files,
        r.millis
    )
}

/// `chirpctl verify`.
pub fn verification(r: &VerifyReport) -> String {
    let mut out = format!(
        "walked {} shard(s): {} users, {} tweets, {} follow edges, {} home rows, {} pending fan-out jobs\n",
        r.shards, r.users, r.tweets, r.edges, r.home_rows, r.pending_fanout
    );
    if r.ok() {
        out.push_str("OK: every invariant holds\n");
        return out;
    }
    let _ = writeln!(out, "DAMAGED: {} problem(s) found\n", r.problems);
    let mut t = Table::new(&["SHARD", "CHECK", "DETAIL"]);
    for f in &r.findings {
        t.row(vec![f.shard.to_string(), f.check.clone(), f.detail.clone()]);
    }
    out.push_str(&t.render());
    if (r.findings.len() as u64) < r.problems {
        let _ = writeln!(out, "... and {} more", r.problems - r.findings.len() as u64);
    }
    out
}

/// `chirpctl users ...`.
pub fn account(a: &Account) -> String {
    let mut t = Table::new(&[
        "ID",
        "HANDLE",
        "NAME",
        "SUSPENDED",
        "FOLLOWERS",
        "FOLLOWING",
        "TWEETS",
    ]);
    t.row(vec![
        a.id.to_string(),
        format!("@{}", a.handle),
        a.display_name.clone(),
        if a.suspended { "yes" } else { "no" }.to_string(),
        a.followers.to_string(),
        a.following.to_string(),
        a.tweets.to_string(),
    ]);
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_tables() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 << 30), "5.0 GiB");
        let mut t = Table::new(&["A", "LONGER"]);
        t.row(vec!["wide cell".into(), "x".into()]);
        assert_eq!(t.render(), "A          LONGER\nwide cell  x\n");
    }
}
