//! The cluster commands of `chirpctl`: `cluster create`, `cluster status`, `node add` (on
//! the control plane, etcd) and `cluster init` (the cluster CA, files only). The work is in
//! `chirp_cluster::admin`; this is argument parsing, a small runtime and printing.
//!
//! `node add` takes each node's addresses from its live registration (`nodes/<name>`, which
//! `chirp serve --etcd` writes), so a node is added while it runs; there are no address
//! flags to mistype.

pub mod render;

use std::sync::Arc;

use std::time::Duration;

use chirp_cluster::admin::{add_nodes, planned_failover, Status};
use chirp_cluster::etcd::parse_endpoints;
use chirp_cluster::{ClusterConfig, ControlPlane, EtcdControlPlane};

use crate::error::{Error, Result};

/// Where the control plane is: every cluster command but `create` and `init` takes these.
#[derive(Debug, Clone, clap::Args)]
pub struct EtcdArgs {
    /// etcd endpoints, comma-separated (e.g. http://127.0.0.1:2379).
    #[arg(long, env = "CHIRP_ETCD")]
    pub etcd: String,
    /// The cluster's name.
    #[arg(long, env = "CHIRP_CLUSTER")]
    pub cluster: String,
}

/// `chirpctl cluster ...`.
#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Create the cluster CA (files; no etcd involved).
    Init {
        /// Directory to write ca.pem and ca.key to.
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Create a cluster: write its config to etcd; refused if it exists.
    Create {
        /// etcd endpoints, comma-separated (e.g. http://127.0.0.1:2379).
        #[arg(long, env = "CHIRP_ETCD")]
        etcd: String,
        /// The cluster's name.
        #[arg(long, env = "CHIRP_CLUSTER")]
        name: String,
        /// Logical shards, fixed for the cluster's life (1 to 1024).
        #[arg(long, default_value_t = 64)]
        shards: u32,
        /// Copies of each shard (a primary and rf - 1 replicas).
        #[arg(long, default_value_t = 3)]
        rf: u32,
        /// Replicas each write waits for.
        #[arg(long, default_value_t = 1)]
        min_sync: u32,
    },
    /// The map: revision, controller, nodes, shards.
    Status {
        /// The control plane.
        #[command(flatten)]
        etcd: EtcdArgs,
    },
}

/// `chirpctl node ...`.
#[derive(Debug, clap::Subcommand)]
pub enum NodeCommand {
    /// Admit running nodes as members. The first nodes added to a cluster share out all its
    /// shards (rf copies each, primaries spread); nodes added later hold nothing until a
    /// rebalance.
    Add {
        /// Names of the nodes (each must be running with `chirp serve --etcd`).
        #[arg(required = true)]
        names: Vec<String>,
        /// The control plane.
        #[command(flatten)]
        etcd: EtcdArgs,
    },
}

/// `chirpctl shard ...`.
#[derive(Debug, clap::Subcommand)]
pub enum ShardCommand {
    /// Give a node a copy of a shard: it joins as a learner, catches up from the primary
    /// (bootstrapping from a checkpoint when needed, image files included), and the
    /// controller makes it a replica once it is within a few entries of the primary.
    AddReplica {
        /// The shard.
        shard: u32,
        /// The node (an active member) that takes a copy.
        #[arg(long)]
        node: String,
        /// The control plane.
        #[command(flatten)]
        etcd: EtcdArgs,
    },
    /// Make a live replica the primary of a shard whose primary is dead and that has no live
    /// sync replica to fail over to. Writes acknowledged by the dead primary that this replica
    /// never received are lost: say so with --accept-data-loss.
    ForcePromote {
        /// The shard.
        shard: u32,
        /// The replica that becomes the primary.
        #[arg(long)]
        to: String,
        /// Accept that acknowledged writes the replica lacks are lost.
        #[arg(long)]
        accept_data_loss: bool,
        /// The control plane.
        #[command(flatten)]
        etcd: EtcdArgs,
    },
    /// A planned handover: the primary stops taking writes, the target catches up, and one
    /// transaction makes it the primary at the next epoch. Nothing acknowledged is lost;
    /// writes to the shard pause meanwhile. Both nodes must be running.
    Failover {
        /// The shard.
        shard: u32,
        /// The replica to hand over to (default: the first live one of the sync set, else
        /// of the replicas).
        #[arg(long)]
        to: Option<String>,
        /// How long the primary waits, writes paused, for the target to catch up before it
        /// calls the handover off.
        #[arg(long, default_value_t = 10)]
        timeout_secs: u64,
        /// The control plane.
        #[command(flatten)]
        etcd: EtcdArgs,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

async fn connect(urls: &str, cluster: &str) -> Result<Arc<dyn ControlPlane>> {
    let endpoints = parse_endpoints(urls)?;
    Ok(Arc::new(
        EtcdControlPlane::connect(&endpoints, cluster).await?,
    ))
}

fn print(json: bool, value: &impl serde::Serialize, human: impl FnOnce() -> String) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", human());
    }
    Ok(())
}

/// Runs a `cluster` command.
pub fn run_cluster(command: &ClusterCommand, json: bool) -> Result<u8> {
    match command {
        ClusterCommand::Init { out } => {
            crate::repl::cluster_init(out).map_err(|e| Error::Invalid(format!("{e:#}")))?;
        }
        ClusterCommand::Create {
            etcd,
            name,
            shards,
            rf,
            min_sync,
        } => {
            let config = ClusterConfig {
                shards: *shards,
                rf: *rf,
                min_sync: *min_sync,
            };
            let revision = runtime()?.block_on(async {
                connect(etcd, name)
                    .await?
                    .create_config(&config)
                    .await
                    .map_err(Error::from)
            })?;
            let shown =
                serde_json::json!({"cluster": name, "config": config, "revision": revision});
            print(json, &shown, || {
                format!(
                    "cluster {name} created: {shards} shards, rf {rf}, min_sync {min_sync} (revision {revision})\n"
                )
            })?;
        }
        ClusterCommand::Status { etcd } => {
            let map = runtime()?.block_on(async {
                connect(&etcd.etcd, &etcd.cluster)
                    .await?
                    .read_map()
                    .await
                    .map_err(Error::from)
            })?;
            if map.config.is_none() {
                return Err(chirp_cluster::Error::NoConfig {
                    cluster: etcd.cluster.clone(),
                }
                .into());
            }
            let status = Status::of(&map);
            if json {
                println!("{}", serde_json::to_string(&status)?);
            } else {
                let lags = shard_lags(&map);
                print!("{}", render::status(&etcd.cluster, &status, &lags));
            }
        }
    }
    Ok(0)
}

/// Runs a `node` command.
pub fn run_node(command: &NodeCommand, json: bool) -> Result<u8> {
    match command {
        NodeCommand::Add { names, etcd } => {
            let report = runtime()?.block_on(async {
                let plane = connect(&etcd.etcd, &etcd.cluster).await?;
                add_nodes(&*plane, names).await.map_err(Error::from)
            })?;
            print(json, &report, || render::added(&report))?;
        }
    }
    Ok(0)
}

/// Runs a `shard` command.
pub fn run_shard(command: &ShardCommand, json: bool) -> Result<u8> {
    match command {
        ShardCommand::AddReplica { shard, node, etcd } => {
            let report = runtime()?.block_on(async {
                let plane = connect(&etcd.etcd, &etcd.cluster).await?;
                chirp_cluster::admin::add_replica(&*plane, *shard, node)
                    .await
                    .map_err(Error::from)
            })?;
            print(json, &report, || {
                format!(
                    "shard {}: {} takes a copy as a learner (revision {}); the controller makes it a replica once it has caught up (`cluster status`)\n",
                    report.shard, report.node, report.revision
                )
            })?;
        }
        ShardCommand::ForcePromote {
            shard,
            to,
            accept_data_loss,
            etcd,
        } => {
            let report = runtime()?.block_on(async {
                let plane = connect(&etcd.etcd, &etcd.cluster).await?;
                chirp_cluster::admin::force_promote(&*plane, *shard, to, *accept_data_loss)
                    .await
                    .map_err(Error::from)
            })?;
            print(json, &report, || {
                format!(
                    "shard {} forced to {} at epoch {} (its primary {} is dead; writes {} lacked are lost)\n",
                    report.shard, report.to, report.epoch, report.from, report.to
                )
            })?;
        }
        ShardCommand::Failover {
            shard,
            to,
            timeout_secs,
            etcd,
        } => {
            let report = runtime()?.block_on(async {
                let plane = connect(&etcd.etcd, &etcd.cluster).await?;
                planned_failover(
                    &*plane,
                    *shard,
                    to.as_deref(),
                    Duration::from_secs(*timeout_secs),
                )
                .await
                .map_err(Error::from)
            })?;
            print(json, &report, || {
                format!(
                    "shard {} handed over from {} to {} at epoch {} in {} ms (revision {})\n",
                    report.shard,
                    report.from,
                    report.to,
                    report.epoch,
                    report.took_ms,
                    report.revision
                )
            })?;
        }
    }
    Ok(0)
}

/// Each shard's replication lag as its primary reports it (`GET /replication` on the
/// primary's public API): the largest of its replicas' lags in LSNs, `n2 down` for a replica
/// not connected, `primary down` when the primary does not answer. Shards of unreachable
/// primaries are left out.
fn shard_lags(map: &chirp_cluster::ClusterMap) -> std::collections::BTreeMap<u32, String> {
    let agent = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(2))
        .build();
    let mut reports = std::collections::BTreeMap::new();
    let mut lags = std::collections::BTreeMap::new();
    for shard in map.shards.values() {
        let primary = &shard.assignment.primary;
        let report = reports.entry(primary.clone()).or_insert_with(|| {
            let api = map.nodes.get(primary).map(|n| n.api.clone())?;
            agent
                .get(&format!("http://{api}/replication"))
                .call()
                .ok()?
                .into_json::<serde_json::Value>()
                .ok()
        });
        let Some(report) = report else {
            lags.insert(shard.id, "primary down".to_string());
            continue;
        };
        let Some(mine) = report["shards"]
            .as_array()
            .and_then(|all| all.iter().find(|s| s["shard"] == shard.id))
        else {
            continue;
        };
        let replicas = mine["replicas"].as_array().cloned().unwrap_or_default();
        let mut worst: u64 = 0;
        let mut down = Vec::new();
        for name in &shard.assignment.replicas {
            match replicas.iter().find(|r| r["node"] == name.as_str()) {
                Some(r) if r["connected"] == true => {
                    worst = worst.max(r["lag_lsn"].as_u64().unwrap_or(0))
                }
                _ => down.push(format!("{name} down")),
            }
        }
        let text = if down.is_empty() {
            worst.to_string()
        } else {
            format!("{worst} ({})", down.join(", "))
        };
        lags.insert(shard.id, text);
    }
    lags
}
