//! The replication commands of `chirpctl`: node certificates (the cluster CA is made by
//! `cluster init`, in [`crate::cluster`], with this module's [`cluster_init`]), promotion,
//! status and digests. Status is read from a node's public HTTP address; promotion and
//! digests are operator actions, sent to the node's admin listener.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;

/// Creates a cluster CA in `out`.
pub fn cluster_init(out: &Path) -> anyhow::Result<()> {
    chirp_replication::tls::create_cluster_ca(out)
        .with_context(|| format!("creating the cluster CA in {}", out.display()))?;
    println!("cluster CA written to {}", out.display());
    Ok(())
}

/// Issues node `name`'s certificate (also naming `ips`) from the CA in `ca` into `out`.
pub fn cert(ca: &Path, name: &str, ips: &[std::net::IpAddr], out: &Path) -> anyhow::Result<()> {
    chirp_replication::tls::issue_node_cert(ca, name, ips, out)
        .with_context(|| format!("issuing a certificate for {name}"))?;
    println!("certificate for {name} written to {}", out.display());
    Ok(())
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build()
}

fn call(method: &str, url: &str, token: Option<&str>) -> anyhow::Result<Value> {
    let mut req = agent().request(method, url);
    if let Some(token) = token {
        req = req.set("Authorization", &format!("Bearer {token}"));
    }
    match req.call() {
        Ok(resp) => Ok(resp.into_json()?),
        Err(ureq::Error::Status(code, resp)) => {
            let body = resp.into_string().unwrap_or_default();
            bail!("{method} {url}: {code} {body}")
        }
        Err(e) => bail!("{method} {url}: {e}"),
    }
}

/// Promotes the node whose admin listener is at `admin` to primary.
pub fn promote(admin: &str, token: Option<&str>) -> anyhow::Result<Value> {
    call(
        "POST",
        &format!("{}/promote", admin.trim_end_matches('/')),
        token,
    )
}

/// The replication status of a node.
pub fn status(node: &str) -> anyhow::Result<Value> {
    call(
        "GET",
        &format!("{}/replication", node.trim_end_matches('/')),
        None,
    )
}

/// Per-shard, per-column-family digests of the node whose admin listener is at `admin`.
pub fn digest(admin: &str, token: Option<&str>) -> anyhow::Result<Value> {
    call(
        "GET",
        &format!("{}/digest", admin.trim_end_matches('/')),
        token,
    )
}

/// Renders a status report as a table: one line per shard, and one per replica on a primary.
pub fn render_status(s: &Value) -> String {
    let mut out = format!(
        "node {} ({}, ack {}), replication on {}{}\n",
        s["node"].as_str().unwrap_or("?"),
        s["role"].as_str().unwrap_or("?"),
        s["ack"].as_str().unwrap_or("?"),
        s["replication_addr"].as_str().unwrap_or("?"),
        match s["following"].as_str() {
            Some(p) => format!(", following {p}"),
            None => String::new(),
        }
    );
    out.push_str(
        "shard  epoch  last_lsn  oldest  peer                 lag_lsn  lag_s   connected\n",
    );
    for shard in s["shards"].as_array().into_iter().flatten() {
        let head = format!(
            "{:<6} {:<6} {:<9} {:<7}",
            shard["shard"].to_string(),
            shard["epoch"].to_string(),
            shard["last_lsn"].to_string(),
            shard["oldest_lsn"].to_string()
        );
        match shard["replicas"].as_array() {
            Some(replicas) if replicas.is_empty() => {
                out.push_str(&format!("{head} (no replicas)\n"));
            }
            Some(replicas) => {
                for r in replicas {
                    out.push_str(&format!(
                        "{head} {:<20} {:<8} {:<7.3} {}\n",
                        r["node"].as_str().unwrap_or("?"),
                        r["lag_lsn"].to_string(),
                        r["lag_seconds"].as_f64().unwrap_or(0.0),
                        r["connected"]
                    ));
                }
            }
            None => out.push_str(&format!(
                "{head} {:<20} {:<8} {:<7.3} {}\n",
                "(primary)",
                shard["lag_lsn"].to_string(),
                shard["lag_seconds"].as_f64().unwrap_or(0.0),
                shard["connected"]
            )),
        }
    }
    out
}

/// The replication commands of `chirpctl` (flattened into its command list).
#[derive(Debug, clap::Subcommand)]
pub enum ReplCommand {
    /// Issue a node certificate signed by the cluster CA.
    Cert {
        /// Directory holding the cluster CA (from `cluster init`).
        #[arg(long)]
        ca: std::path::PathBuf,
        /// The node's name.
        #[arg(long)]
        node: String,
        /// An address other nodes reach this one at (repeatable): replicas check their
        /// primary's certificate against the address they dial. 127.0.0.1 is always named.
        #[arg(long = "ip")]
        ips: Vec<std::net::IpAddr>,
        /// Where to write ca.pem, node.pem and node.key (give it to `chirp serve --tls-dir`).
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Make a replica the primary (its epochs are raised), through its admin listener.
    Promote {
        /// The node's admin listener, e.g. http://127.0.0.1:8081.
        #[arg(long)]
        node: String,
    },
    /// Per-shard role, epoch, LSNs and replication lag of nodes (public HTTP addresses).
    ReplStatus {
        /// Public HTTP addresses of the nodes.
        #[arg(long, required = true)]
        node: Vec<String>,
    },
    /// Per-shard digests of every column family but meta, through the node's admin listener.
    Digest {
        /// The node's admin listener, e.g. http://127.0.0.1:8081.
        #[arg(long)]
        node: String,
    },
}

/// Runs a replication command; `json` prints raw JSON instead of tables; `token` is the admin
/// listener's, for promotion and digests.
pub fn run(command: &ReplCommand, json: bool, token: Option<&str>) -> anyhow::Result<()> {
    match command {
        ReplCommand::Cert { ca, node, ips, out } => cert(ca, node, ips, out),
        ReplCommand::Promote { node } => {
            println!("{}", promote(node, token)?);
            Ok(())
        }
        ReplCommand::ReplStatus { node } => {
            for n in node {
                let s = status(n)?;
                if json {
                    println!("{s}");
                } else {
                    print!("{}", render_status(&s));
                }
            }
            Ok(())
        }
        ReplCommand::Digest { node } => {
            println!("{}", digest(node, token)?);
            Ok(())
        }
    }
}
