//! Tables for people: what the cluster commands print without `--json`.

use std::collections::BTreeMap;

use chirp_cluster::admin::{AddReport, Status};

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
