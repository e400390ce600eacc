//! Tables for people: what the cluster commands print without `--json`.

use std::collections::BTreeMap;

use chirp_cluster::admin::{AddReport, MoveReport, MoveStatus, RunReport, Status};
use chirp_cluster::rebalance::Step;

use super::MoveProgress;

/// The status report: a line for the map, a table of nodes, a table of shards with each
/// shard's replication lag (`lags`, by shard id, as its primary reports it).
pub fn status(cluster: &str, s: &Status, lags: &BTreeMap<u32, String>) -> String {
    let mut out = format!(
        "cluster {cluster} at revision {}; controller: {}\n\n",
        s.revision,
        s.controller.as_deref().unwrap_or("none")
    );
    out.push_str(&format!(
        "{:<20} {:<24} {:<6} {}\n",
        "node", "api", "alive", "state"
    ));
    for n in &s.nodes {
        out.push_str(&format!(
            "{:<20} {:<24} {:<6} {}\n",
            n.name,
            n.api,
            if n.alive { "yes" } else { "no" },
            n.state.map_or("(not added)", |st| st.as_str())
        ));
    }
    if s.shards.is_empty() {
        out.push_str("\nno shards yet: `chirpctl node add` shares them out over the first nodes\n");
        return out;
    }
    out.push_str(&format!(
        "\n{:<6} {:<6} {:<20} {:<30} {:<20} {:<20} {}\n",
        "shard", "epoch", "primary", "replicas", "sync", "learners", "lag"
    ));
    for sh in &s.shards {
        out.push_str(&format!(
            "{:<6} {:<6} {:<20} {:<30} {:<20} {:<20} {}\n",
            sh.id,
            sh.epoch,
            sh.primary,
            list(&sh.replicas),
            list(&sh.sync),
            list(&sh.learners),
            lags.get(&sh.id).map_or("?", String::as_str)
        ));
    }
    out
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "-".into()
    } else {
        names.join(",")
    }
}

/// What `node add` did.
pub fn added(r: &AddReport) -> String {
    if r.shards_created > 0 {
        format!(
            "added {}; the shard map was created over them: {} shards (revision {})\n",
            r.added.join(", "),
            r.shards_created,
            r.revision
        )
    } else {
        format!(
            "added {} (revision {}); they hold no shards until a rebalance moves some to them\n",
            r.added.join(", "),
            r.revision
        )
    }
}

/// What `shard move` started (or, for a dry run, would do).
pub fn move_started(r: &MoveReport) -> String {
    let mut out = match r.revision {
        Some(rev) => format!(
            "shard {}: moving {}'s copy to {} as {} (revision {}); the controller carries it out (`chirpctl move status {}`)\n",
            r.shard,
            r.from,
            r.to,
            if r.primary { "primary" } else { "replica" },
            rev,
            r.shard
        ),
        None => format!(
            "dry run: shard {} would move {}'s copy to {} as {}:\n",
            r.shard,
            r.from,
            r.to,
            if r.primary { "primary" } else { "replica" }
        ),
    };
    for (i, step) in r.steps.iter().enumerate() {
        out.push_str(&format!("  {}. {step}\n", i + 1));
    }
    out
}

/// The moves under way.
pub fn moves(moves: &[MoveStatus]) -> String {
    if moves.is_empty() {
        return "no moves under way\n".into();
    }
    let mut out = format!(
        "{:<6} {:<20} {:<20} {:<8} {:<12} {}\n",
        "shard", "from", "to", "role", "step", "handovers called off"
    );
    for m in moves {
        out.push_str(&format!(
            "{:<6} {:<20} {:<20} {:<8} {:<12} {}\n",
            m.shard,
            m.from,
            m.to,
            if m.primary { "primary" } else { "replica" },
            m.state,
            m.attempts
        ));
    }
    out
}

/// One shard's move and how far its target is.
pub fn move_progress(p: &MoveProgress) -> String {
    let Some(m) = &p.moving else {
        return format!(
            "shard {}: no move under way (primary {})\n",
            p.shard, p.primary
        );
    };
    let num = |l: Option<u64>| l.map_or("?".to_string(), |l| l.to_string());
    let mb = |b: Option<u64>| b.map_or("?".to_string(), |b| format!("{:.1}", b as f64 / 1e6));
    format!(
        "shard {}: {} -> {} as {}, step {}, {} s; LSN {} of the primary's {} ({}); checkpoint \
         copied {} MB of the shard's {} MB\n",
        p.shard,
        m.from,
        m.to,
        if m.primary { "primary" } else { "replica" },
        m.state,
        p.elapsed_ms / 1000,
        num(p.target_lsn),
        num(p.primary_lsn),
        p.primary,
        mb(p.checkpoint_bytes),
        mb(p.primary_bytes)
    )
}

/// A plan's steps (`--dry-run`).
pub fn plan(steps: &[Step]) -> String {
    if steps.is_empty() {
        return "nothing to do: copies and primaries are even\n".into();
    }
    let mut out = format!("{} steps:\n", steps.len());
    for (i, s) in steps.iter().enumerate() {
        out.push_str(&format!("  {}. {}\n", i + 1, s.describe()));
    }
    out
}

/// What running a plan did.
pub fn ran(r: &RunReport) -> String {
    let mut out = format!(
        "{} steps done, {} failed, in {:.1} s\n",
        r.done.len(),
        r.failed.len(),
        r.took_ms as f64 / 1000.0
    );
    for f in &r.failed {
        out.push_str(&format!("  failed: {f}\n"));
    }
    out
}
