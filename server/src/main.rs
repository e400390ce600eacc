//! The `chirp` binary: argument parsing and wiring; the work is in the libraries.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use chirp_engine::{Node, NodeConfig};
use chirp_server::App;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "chirp",
    version,
    about = "Chirp: a Twitter-like service on RocksDB"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Data directory (created if missing).
    #[arg(long, env = "CHIRP_DATA", default_value = "./data")]
    data: PathBuf,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "CHIRP_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Shards of a new data directory (an existing one keeps its count).
    #[arg(long, env = "CHIRP_SHARDS", default_value_t = 4)]
    shards: usize,
    /// Block cache shared by all shards, in MiB.
    #[arg(long, env = "CHIRP_BLOCK_CACHE_MB", default_value_t = 256)]
    block_cache_mb: usize,
    /// Authors with more followers than this are merged into feeds at read time.
    #[arg(long, env = "CHIRP_CELEBRITY_THRESHOLD", default_value_t = 10_000)]
    celebrity_threshold: u64,
    /// Memory for the hot-tweet cache, in MiB (0 disables it).
    #[arg(long, env = "CHIRP_TWEET_CACHE_MB", default_value_t = 128)]
    tweet_cache_mb: usize,
    /// Rows kept per materialized home feed.
    #[arg(long, env = "CHIRP_HOME_CAP", default_value_t = 800)]
    home_cap: usize,
    /// Threads copying tweets into followers' feeds (default: one per core, at least 2).
    #[arg(long, env = "CHIRP_FANOUT_WORKERS")]
    fanout_workers: Option<usize>,
    /// Most connections served at once.
    #[arg(long, env = "CHIRP_MAX_CONNECTIONS", default_value_t = 4096)]
    max_connections: usize,
    /// Largest image upload, in bytes.
    #[arg(long, env = "CHIRP_MAX_MEDIA_BYTES", default_value_t = chirp_engine::media::DEFAULT_MAX_MEDIA_BYTES)]
    max_media_bytes: usize,
    /// Relaxed durability: acknowledge writes before they are fsynced (a crash can lose the
    /// last moments of acknowledged writes).
    #[arg(long, env = "CHIRP_NO_SYNC")]
    no_sync: bool,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(args),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = NodeConfig::new(&args.data);
    config.shards = args.shards;
    config.block_cache_bytes = args.block_cache_mb << 20;
    config.celebrity_threshold = args.celebrity_threshold;
    config.home_cap = args.home_cap.max(1);
    config.tweet_cache_bytes = args.tweet_cache_mb << 20;
    config.sync_writes = !args.no_sync;
    if let Some(n) = args.fanout_workers {
        config.fanout_workers = n.max(1);
    }
    config.max_media_bytes = args.max_media_bytes;
    let node = Node::open(config).with_context(|| format!("opening {}", args.data.display()))?;
    let app = Arc::new(App {
        node: Arc::new(node),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        let addr = listener.local_addr()?;
        // Scripts and tests read this line to learn the port.
        println!("chirp listening on http://{addr}");
        tracing::info!(%addr, "listening");
        chirp_server::run(
            listener,
            Arc::clone(&app),
            args.max_connections,
            shutdown_signal(),
        )
        .await;
        anyhow::Ok(())
    })?;
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match Arc::try_unwrap(app)
        .ok()
        .and_then(|app| Arc::try_unwrap(app.node).ok())
    {
        Some(node) => node.close().context("closing the node")?,
        None => tracing::warn!("requests still running at exit; the node closes without a flush"),
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}
