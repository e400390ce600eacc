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
    /// Move every copy off a node: it is marked draining (no copy goes to it any more), the
    /// shards it leads are handed over to their replicas, then each copy it holds moves to
    /// the member with the fewest copies (or, with none able to take it, is taken out if
    /// the shard keeps min_sync replicas).
    Drain {
        /// The node.
        name: String,
        /// Print the steps without doing anything.
        #[arg(long)]
        dry_run: bool,
        /// Moves at once.
        #[arg(long, default_value_t = 2)]
        parallel: usize,
        /// Stop starting steps after this many seconds (moves started go on).
        #[arg(long, default_value_t = 3600)]
        timeout_secs: u64,
        /// The control plane.
        #[command(flatten)]
        etcd: EtcdArgs,
    },
    /// Retire a node that holds nothing (drain it first): marked removed, its peers refuse
    /// it from then on, its name is never reused.
    Remove {
        /// The node.
        name: String,
        /// The control plane.
        #[command(flatten)]
        etcd: EtcdArgs,
    },
}

/// `chirpctl rebalance`: even out copies and primaries over the active members.
#[derive(Debug, clap::Args)]
pub struct RebalanceArgs {
    /// Print the steps without doing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Moves at once.
    #[arg(long, default_value_t = 2)]
    pub parallel: usize,
    /// Stop starting steps after this many seconds (moves started go on).
    #[arg(long, default_value_t = 3600)]
    pub timeout_secs: u64,
    /// The control plane.
    #[command(flatten)]
    pub etcd: EtcdArgs,
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
    /// Take a node's copy of a shard out (a replica's or a learner's, never the primary's):
    /// the node closes it and moves its files to `dropped/` in its data dir.
    RemoveReplica {
        /// The shard.
        shard: u32,
        /// The node whose copy goes.
        #[arg(long)]
        node: String,
        /// The control plane.
        #[command(flatten)]
        etcd: EtcdArgs,
    },
    /// Move a copy of a shard to another node while it takes writes: the target catches up
    /// as a learner, joins the sync set, takes over as primary if the moved copy is the
    /// primary's (writes pause briefly), and the source's copy is taken out. The elected
    /// controller carries it out; this returns once it has started (see `move status`).
    Move {
        /// The shard.
        shard: u32,
        /// The node that takes a copy (an active, running member holding none).
        #[arg(long)]
        to: String,
        /// The node giving its copy up (default: the primary for --role primary, else the
        /// replica outside the sync set).
        #[arg(long)]
        from: Option<String>,
        /// What the target ends as.
        #[arg(long, value_enum, default_value = "replica")]
        role: Role,
        /// Print the steps without starting anything.
        #[arg(long)]
        dry_run: bool,
        /// Whether and how long to wait for the move to end.
        #[command(flatten)]
        wait: WaitArgs,
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

/// `--wait` for a move.
#[derive(Debug, Clone, clap::Args)]
pub struct WaitArgs {
    /// Wait until the move is done, showing its progress.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up waiting (the move goes on) after this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub timeout_secs: u64,
}

/// What a moved copy ends as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// The shard's primary.
    Primary,
    /// One of its replicas.
    Replica,
}

/// `chirpctl move ...`.
#[derive(Debug, clap::Subcommand)]
pub enum MoveCommand {
    /// The moves under way.
    List {
        /// The control plane.
        #[command(flatten)]
        etcd: EtcdArgs,
    },
    /// One shard's move: its step, and how far the target is behind the primary.
    Status {
        /// The shard.
        shard: u32,
        /// Whether and how long to wait for the move to end.
        #[command(flatten)]
        wait: WaitArgs,
        /// The control plane.
        #[command(flatten)]
        etcd: EtcdArgs,
    },
    /// Undo a move that has not reached its cutover: the target's copy is taken out again.
    Abort {
        /// The shard.
        shard: u32,
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

/// Runs `f` with a connection to the control plane, on a small runtime.
fn on_plane<T, F, Fut>(etcd: &EtcdArgs, f: F) -> Result<T>
where
    F: FnOnce(Arc<dyn ControlPlane>) -> Fut,
    Fut: std::future::Future<Output = chirp_cluster::Result<T>>,
{
    runtime()?.block_on(async {
        let plane = connect(&etcd.etcd, &etcd.cluster).await?;
        f(plane).await.map_err(Error::from)
    })
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
            let map = read_map(etcd)?;
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
            let report = on_plane(etcd, |plane| async move { add_nodes(&*plane, names).await })?;
            print(json, &report, || render::added(&report))?;
        }
        NodeCommand::Drain {
            name,
            dry_run,
            parallel,
            timeout_secs,
            etcd,
        } => {
            return runtime()?.block_on(async {
                let plane = connect(&etcd.etcd, &etcd.cluster).await?;
                let map = plane.read_map().await?;
                let steps = chirp_cluster::rebalance::drain(&map, name)?;
                if *dry_run {
                    print(json, &steps, || render::plan(&steps))?;
                    return Ok(0);
                }
                chirp_cluster::admin::set_member_state(
                    &*plane,
                    name,
                    chirp_cluster::MemberState::Draining,
                )
                .await?;
                let report = run_plan(&*plane, &steps, *parallel, *timeout_secs, json).await?;
                print(json, &report, || render::ran(&report))?;
                Ok(u8::from(!report.failed.is_empty()))
            });
        }
        NodeCommand::Remove { name, etcd } => {
            let revision = on_plane(etcd, |plane| async move {
                chirp_cluster::admin::remove_node(&*plane, name).await
            })?;
            let shown = serde_json::json!({"node": name, "removed": true, "revision": revision});
            print(json, &shown, || {
                format!("{name} removed from the cluster (revision {revision})\n")
            })?;
        }
    }
    Ok(0)
}

/// Runs `chirpctl rebalance`: plans, runs the plan, and plans again from the map it finds
/// until nothing is left to do (at most a few rounds: a round that changed nothing ends it).
pub fn run_rebalance(args: &RebalanceArgs, json: bool) -> Result<u8> {
    runtime()?.block_on(async {
        let plane = connect(&args.etcd.etcd, &args.etcd.cluster).await?;
        let mut total = chirp_cluster::admin::RunReport::default();
        for round in 0..5 {
            let map = plane.read_map().await?;
            if map.config.is_none() {
                return Err(chirp_cluster::Error::NoConfig {
                    cluster: args.etcd.cluster.clone(),
                }
                .into());
            }
            let bytes = shard_bytes(&map);
            let steps = chirp_cluster::rebalance::rebalance(&map, &bytes)?;
            if args.dry_run {
                print(json, &steps, || render::plan(&steps))?;
                return Ok(0);
            }
            if steps.is_empty() {
                break;
            }
            let report = run_plan(&*plane, &steps, args.parallel, args.timeout_secs, json).await?;
            let progressed = !report.done.is_empty();
            total.done.extend(report.done);
            total.failed.extend(report.failed);
            total.took_ms += report.took_ms;
            if !progressed || round == 4 {
                break;
            }
        }
        print(json, &total, || render::ran(&total))?;
        Ok(u8::from(!total.failed.is_empty()))
    })
}

/// Runs a plan's steps, printing each as it starts and ends (unless `json`).
async fn run_plan(
    plane: &dyn ControlPlane,
    steps: &[chirp_cluster::rebalance::Step],
    parallel: usize,
    timeout_secs: u64,
    json: bool,
) -> Result<chirp_cluster::admin::RunReport> {
    let mut progress = |line: &str| {
        if !json {
            eprintln!("{line}");
        }
    };
    Ok(chirp_cluster::admin::run_steps(
        plane,
        steps,
        parallel,
        Duration::from_secs(timeout_secs),
        &mut progress,
    )
    .await?)
}

/// Runs a `shard` command.
pub fn run_shard(command: &ShardCommand, json: bool) -> Result<u8> {
    match command {
        ShardCommand::AddReplica { shard, node, etcd } => {
            let report = on_plane(etcd, |plane| async move {
                chirp_cluster::admin::add_replica(&*plane, *shard, node).await
            })?;
            print(json, &report, || {
                format!(
                    "shard {}: {} takes a copy as a learner (revision {}); the controller makes it a replica once it has caught up (`cluster status`)\n",
                    report.shard, report.node, report.revision
                )
            })?;
        }
        ShardCommand::RemoveReplica { shard, node, etcd } => {
            let report = on_plane(etcd, |plane| async move {
                chirp_cluster::admin::remove_replica(&*plane, *shard, node).await
            })?;
            print(json, &report, || {
                format!(
                    "shard {}: {}'s copy taken out (revision {}); {} moves its files to dropped/\n",
                    report.shard, report.node, report.revision, report.node
                )
            })?;
        }
        ShardCommand::Move {
            shard,
            to,
            from,
            role,
            dry_run,
            wait,
            etcd,
        } => {
            let report = on_plane(etcd, |plane| async move {
                chirp_cluster::admin::start_move(
                    &*plane,
                    *shard,
                    from.as_deref(),
                    to,
                    *role == Role::Primary,
                    *dry_run,
                )
                .await
            })?;
            print(json, &report, || render::move_started(&report))?;
            if wait.wait && !*dry_run {
                return wait_for_move(etcd, *shard, json, Duration::from_secs(wait.timeout_secs));
            }
        }
        ShardCommand::ForcePromote {
            shard,
            to,
            accept_data_loss,
            etcd,
        } => {
            let report = on_plane(etcd, |plane| async move {
                chirp_cluster::admin::force_promote(&*plane, *shard, to, *accept_data_loss).await
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
            let report = on_plane(etcd, |plane| async move {
                planned_failover(
                    &*plane,
                    *shard,
                    to.as_deref(),
                    Duration::from_secs(*timeout_secs),
                )
                .await
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

/// Runs a `move` command.
pub fn run_move(command: &MoveCommand, json: bool) -> Result<u8> {
    match command {
        MoveCommand::List { etcd } => {
            let map = read_map(etcd)?;
            let moves = chirp_cluster::admin::moves_of(&map);
            print(json, &moves, || render::moves(&moves))?;
        }
        MoveCommand::Status { shard, wait, etcd } => {
            if wait.wait {
                return wait_for_move(etcd, *shard, json, Duration::from_secs(wait.timeout_secs));
            }
            let map = read_map(etcd)?;
            let status = move_progress(&map, *shard)?;
            print(json, &status, || render::move_progress(&status))?;
        }
        MoveCommand::Abort { shard, etcd } => {
            let revision = on_plane(etcd, |plane| async move {
                chirp_cluster::admin::abort_move(&*plane, *shard).await
            })?;
            let shown = serde_json::json!({"shard": shard, "aborted": true, "revision": revision});
            print(json, &shown, || {
                format!("shard {shard}: move aborted (revision {revision})\n")
            })?;
        }
    }
    Ok(0)
}

/// The map, from etcd; an error if the cluster was never created.
fn read_map(etcd: &EtcdArgs) -> Result<chirp_cluster::ClusterMap> {
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
    Ok(map)
}

/// A move's progress (`move status`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct MoveProgress {
    /// The shard.
    pub shard: u32,
    /// The move, null once none is under way.
    #[serde(rename = "move")]
    pub moving: Option<chirp_cluster::admin::MoveStatus>,
    /// The shard's primary now.
    pub primary: String,
    /// The primary's last LSN, if it answered.
    pub primary_lsn: Option<u64>,
    /// The target's last LSN, if it answered.
    pub target_lsn: Option<u64>,
    /// Bytes of the shard's files on the primary, if it answered.
    pub primary_bytes: Option<u64>,
    /// Bytes of the checkpoint the target received (or is receiving), if it answered.
    pub checkpoint_bytes: Option<u64>,
    /// Milliseconds since the move started.
    pub elapsed_ms: u64,
}

/// Asks the primary and the target of a shard's move for their positions.
fn move_progress(map: &chirp_cluster::ClusterMap, shard: u32) -> Result<MoveProgress> {
    let s = map
        .shards
        .get(&shard)
        .ok_or_else(|| Error::Invalid(format!("the cluster has no shard {shard}")))?;
    let moving = chirp_cluster::admin::moves_of(map)
        .into_iter()
        .find(|m| m.shard == shard);
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(2))
        .build();
    let report_of = |node: &str| -> Option<serde_json::Value> {
        let report = replication_report(&agent, &map.nodes.get(node)?.api)?;
        report["shards"]
            .as_array()?
            .iter()
            .find(|r| r["shard"] == shard)
            .cloned()
    };
    let primary = s.assignment.primary.clone();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let at_primary = report_of(&primary);
    let at_target = moving.as_ref().and_then(|m| report_of(&m.to));
    let field = |r: &Option<serde_json::Value>, name: &str| r.as_ref()?[name].as_u64();
    Ok(MoveProgress {
        shard,
        primary_lsn: field(&at_primary, "last_lsn"),
        target_lsn: field(&at_target, "last_lsn"),
        primary_bytes: field(&at_primary, "bytes"),
        checkpoint_bytes: field(&at_target, "checkpoint_bytes"),
        elapsed_ms: moving
            .as_ref()
            .map_or(0, |m| now_ms.saturating_sub(m.started_ms)),
        primary,
        moving,
    })
}

/// Follows a shard's move until none is under way, with a progress bar (the checkpoint's bytes
/// against the shard's while the target copies one, then its LSN against the primary's; the
/// step in its message); prints where the shard ended up. Past `timeout` it stops waiting
/// with an error (the move goes on).
fn wait_for_move(etcd: &EtcdArgs, shard: u32, json: bool, timeout: Duration) -> Result<u8> {
    let deadline = std::time::Instant::now() + timeout;
    let bar = if json {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed}]")
        {
            bar.set_style(style);
        }
        bar
    };
    let mut seen: Option<chirp_cluster::admin::MoveStatus> = None;
    loop {
        let map = read_map(etcd)?;
        let progress = move_progress(&map, shard)?;
        let Some(m) = &progress.moving else {
            bar.finish_and_clear();
            let a = &map.shards[&shard].assignment;
            if let Some(m) = &seen {
                let held = |n: &str| a.copies().any(|c| c == n);
                if !held(&m.to) || held(&m.from) {
                    return Err(Error::Invalid(format!(
                        "shard {shard}'s move from {} to {} was undone (its cutover was called \
                         off too often, or its target did not catch up in time; see the \
                         controller's log); primary {}, replicas {}",
                        m.from,
                        m.to,
                        a.primary,
                        a.replicas.join(", ")
                    )));
                }
            }
            let shown = serde_json::json!({
                "shard": shard,
                "primary": a.primary,
                "replicas": a.replicas,
                "epoch": a.epoch,
            });
            print(json, &shown, || {
                format!(
                    "shard {shard}: no move under way; primary {}, replicas {}, epoch {}\n",
                    a.primary,
                    a.replicas.join(", "),
                    a.epoch
                )
            })?;
            return Ok(0);
        };
        seen = Some(m.clone());
        let copying =
            progress.target_lsn == Some(0) && progress.checkpoint_bytes.is_some_and(|b| b > 0);
        let (unit, done, total) = if copying {
            (
                "bytes",
                progress.checkpoint_bytes.unwrap_or(0),
                progress.primary_bytes.unwrap_or(0),
            )
        } else {
            (
                "LSN",
                progress.target_lsn.unwrap_or(0),
                progress.primary_lsn.unwrap_or(0),
            )
        };
        bar.set_length(total.max(done));
        bar.set_position(done);
        bar.set_message(format!("{unit}; {} -> {}: {}", m.from, m.to, m.state));
        if std::time::Instant::now() >= deadline {
            bar.abandon();
            return Err(Error::Invalid(format!(
                "shard {shard}'s move is still at step {} after {} s; it goes on \
                 (`chirpctl move status {shard}`, or `move abort {shard}`)",
                m.state,
                timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A node's `/replication` report, asked at its public API (None: it did not answer).
fn replication_report(agent: &ureq::Agent, api: &str) -> Option<serde_json::Value> {
    agent
        .get(&format!("http://{api}/replication"))
        .call()
        .ok()?
        .into_json()
        .ok()
}

/// Each shard's entry in its primary's `/replication` report, each primary asked once:
/// None when the primary does not answer, `Null` when it answers without the shard.
fn primary_entries(
    map: &chirp_cluster::ClusterMap,
) -> std::collections::BTreeMap<u32, Option<serde_json::Value>> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(2))
        .build();
    let mut reports: std::collections::BTreeMap<String, Option<serde_json::Value>> =
        std::collections::BTreeMap::new();
    map.shards
        .values()
        .map(|shard| {
            let primary = &shard.assignment.primary;
            let report = reports
                .entry(primary.clone())
                .or_insert_with(|| replication_report(&agent, &map.nodes.get(primary)?.api));
            let entry = report.as_ref().map(|r| {
                r["shards"]
                    .as_array()
                    .and_then(|all| all.iter().find(|s| s["shard"] == shard.id))
                    .cloned()
                    .unwrap_or(serde_json::Value::Null)
            });
            (shard.id, entry)
        })
        .collect()
}

/// Each shard's bytes as its primary reports them; shards whose primary does not answer are
/// left out.
fn shard_bytes(map: &chirp_cluster::ClusterMap) -> std::collections::BTreeMap<u32, u64> {
    primary_entries(map)
        .into_iter()
        .filter_map(|(id, entry)| Some((id, entry?["bytes"].as_u64()?)))
        .collect()
}

/// Each shard's replication lag as its primary reports it (`GET /replication` on the
/// primary's public API): the largest of its replicas' lags in LSNs, `n2 down` for a replica
/// not connected, `primary down` when the primary does not answer. Shards whose primary
/// answers without them are left out.
fn shard_lags(map: &chirp_cluster::ClusterMap) -> std::collections::BTreeMap<u32, String> {
    let mut lags = std::collections::BTreeMap::new();
    let entries = primary_entries(map);
    for shard in map.shards.values() {
        let Some(Some(mine)) = entries.get(&shard.id) else {
            lags.insert(shard.id, "primary down".to_string());
            continue;
        };
        if mine.is_null() {
            continue;
        }
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
