//! `chirp-load`: generate a synthetic network into a data dir, or drive a running node.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chirp_tools::load::generate::{self, GenerateConfig, Sidecar, SIDECAR};
use chirp_tools::load::network::NetworkParams;
use chirp_tools::load::report;
use chirp_tools::load::run::{self, Mode, RunConfig};
use chirp_tools::load::workload::Mix;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "chirp-load", version, about = "Chirp's load generator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Draw a synthetic network and bulk-import it into a stopped node's data dir.
    Generate(GenerateArgs),
    /// Drive a running node with a workload mix and report throughput and latency.
    Run(RunArgs),
}

#[derive(clap::Args)]
struct GenerateArgs {
    /// Data directory of a stopped node (created if missing).
    #[arg(long)]
    data: PathBuf,
    /// Users to create.
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// Mean accounts followed per user.
    #[arg(long, default_value_t = 100.0)]
    mean_following: f64,
    /// Share of follow edges drawn by popularity (Zipf) rather than uniformly.
    #[arg(long, default_value_t = 0.07)]
    celebrity_share: f64,
    /// Tweets imported per user.
    #[arg(long, default_value_t = 1)]
    tweets_per_user: usize,
    /// Hashtag vocabulary size.
    #[arg(long, default_value_t = 1000)]
    hashtags: usize,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Shards of a new data dir (with --cluster: the cluster's shard count).
    #[arg(long, default_value_t = 4)]
    shards: usize,
    /// Make the dir a node of this cluster holding every shard as its primary: start it,
    /// `chirpctl node add` it alone, then add the others and `chirpctl rebalance`.
    #[arg(long)]
    cluster: Option<String>,
    /// Must match `chirp serve --celebrity-threshold`.
    #[arg(long, default_value_t = 10_000)]
    celebrity_threshold: u64,
    /// Must match `chirp serve --home-cap`.
    #[arg(long, default_value_t = 800)]
    home_cap: usize,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The node's address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// The generated network: the data dir's `chirp-load.json`.
    #[arg(long)]
    network: PathBuf,
    /// Workload: seed (5:1 read:write), dsb (60/30/10), feed, hello.
    #[arg(long, default_value = "seed")]
    mix: String,
    /// Open-loop: requests per second in total (without it: closed-loop, max throughput).
    #[arg(long)]
    rate: Option<f64>,
    /// Connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Users to log in and act as.
    #[arg(long, default_value_t = 100)]
    sessions: usize,
    /// Measured seconds per phase.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Unmeasured warm-up seconds before each phase.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Skip the baseline phase.
    #[arg(long)]
    no_baseline: bool,
    /// Skip fan-out lag sampling.
    #[arg(long)]
    no_lag: bool,
    /// The node's pid, to report its resident memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Client runtime threads.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Random seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Generate(a) => {
            let mut params = NetworkParams::new(a.users);
            params.mean_following = a.mean_following;
            params.celebrity_share = a.celebrity_share;
            params.tweets_per_user = a.tweets_per_user;
            params.hashtags = a.hashtags;
            params.seed = a.seed;
            let cfg = GenerateConfig {
                data: a.data.clone(),
                shards: a.shards,
                cluster: a.cluster.clone(),
                celebrity_threshold: a.celebrity_threshold,
                home_cap: a.home_cap,
                params,
            };
            let r = generate::generate(&cfg)
                .with_context(|| format!("generating into {}", a.data.display()))?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", report::generate_table(&r));
                eprintln!("network file: {}", a.data.join(SIDECAR).display());
            }
        }
        Command::Run(a) => {
            let sidecar = Sidecar::load(&a.network)
                .with_context(|| format!("reading {}", a.network.display()))?;
            let cfg = RunConfig {
                addr: a.addr,
                sidecar,
                mix: Mix::named(&a.mix)?,
                mode: a.rate.map_or(Mode::Closed, Mode::Open),
                connections: a.connections.max(1),
                sessions: a.sessions.max(1),
                duration: Duration::from_secs_f64(a.duration.max(0.1)),
                warmup: Duration::from_secs_f64(a.warmup.max(0.0)),
                baseline: !a.no_baseline,
                lag: !a.no_lag,
                server_pid: a.server_pid,
                seed: a.seed,
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(a.client_threads.max(1))
                .enable_all()
                .build()
                .context("starting the runtime")?;
            let r = rt.block_on(run::run(cfg))?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", r.table());
            }
        }
    }
    Ok(())
}
