//! The `chirp` binary: argument parsing and wiring; the work is in the libraries.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use chirp_engine::{Node, NodeRole};
use chirp_server::cluster::{ClusterArgs, Membership};
use chirp_server::config::{LogFormat, ServeArgs};
use chirp_server::metrics::Metrics;
use chirp_server::replication::ReplArgs;
use chirp_server::{AdminApp, App, Config};
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
    /// Serve the HTTP API (and the admin listener beside it).
    Serve(ServeArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => {
            let config = Config::load(&args)?;
            if args.print_config {
                print!("{}", config.to_toml()?);
                return Ok(());
            }
            init_logs(&config);
            serve(config, args.repl, args.cluster)
        }
    }
}

fn init_logs(config: &Config) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}

fn serve(config: Config, repl_args: ReplArgs, cluster_args: ClusterArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    // A cluster node checks its cluster exists before it touches its data dir.
    let plane = runtime
        .block_on(chirp_server::cluster::connect(
            &cluster_args,
            &repl_args.cluster,
        ))
        .with_context(|| format!("joining cluster {:?}", repl_args.cluster))?;
    let mut node_config = config.node_config();
    if repl_args.replica_of.is_some() {
        node_config.role = NodeRole::Replica;
    }
    if let Some(plane) = &plane {
        // A cluster node: its data dir holds the cluster's shards the map gives it, which it
        // reaches (and is reached through) over replication's endpoint.
        anyhow::ensure!(
            repl_args.repl_listen.is_some(),
            "a cluster node (--etcd) needs --repl-listen and --tls-dir: shards are copied \
             and reached between nodes over it"
        );
        anyhow::ensure!(
            repl_args.replica_of.is_none(),
            "a cluster node takes its roles from the cluster map, not --replica-of"
        );
        let cluster = runtime
            .block_on(plane.config())
            .context("reading the cluster's config")?
            .context("the cluster has no config")?;
        node_config.cluster = Some(repl_args.cluster.clone());
        node_config.shards = cluster.shards as usize;
    }
    let node =
        Node::open(node_config).with_context(|| format!("opening {}", config.data.display()))?;
    let node = Arc::new(node);
    let metrics = Arc::new(Metrics::new());
    let app = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let admin_listener = tokio::net::TcpListener::bind(config.admin_listen)
            .await
            .with_context(|| format!("binding the admin listener {}", config.admin_listen))?;
        let addr = listener.local_addr()?;
        let admin_addr = admin_listener.local_addr()?;
        if plane.is_some() {
            chirp_server::forward::leave_from(addr.ip());
        }
        let repl = chirp_server::replication::start(&repl_args, &config.data, &node, addr)
            .await
            .context("starting replication")?;
        // Registered before the banner: whoever reads the banner finds the node alive.
        let membership = match plane {
            Some(plane) => {
                let info = chirp_cluster::NodeInfo {
                    name: repl_args.node_name.clone(),
                    api: addr.to_string(),
                    admin: admin_addr.to_string(),
                    repl: repl.as_ref().map(|r| r.local_addr().to_string()),
                    started_at_ms: chirp_cluster::map::now_ms(),
                    software: env!("CARGO_PKG_VERSION").to_string(),
                };
                let ttl = std::time::Duration::from_secs(cluster_args.lease_ttl_secs.max(1));
                Some(
                    Membership::join(plane, info, ttl)
                        .await
                        .with_context(|| format!("joining cluster {:?}", repl_args.cluster))?,
                )
            }
            None => None,
        };
        // The node reads the map before it serves: its shards open in the parts it names.
        let owners = Arc::new(chirp_server::forward::Owners::default());
        let map_task = match (&membership, &repl) {
            (Some(m), Some(r)) => Some(
                chirp_server::cluster::follow_map(
                    Arc::clone(m),
                    Arc::clone(r),
                    Arc::clone(&owners),
                    repl_args.node_name.clone(),
                )
                .await
                .context("applying the cluster map")?,
            ),
            _ => None,
        };
        let controller_task = membership.as_ref().map(|m| {
            chirp_server::cluster::run_controller(Arc::clone(m), repl_args.node_name.clone())
        });
        let app = Arc::new(App {
            node: Arc::clone(&node),
            metrics: Arc::clone(&metrics),
            repl: repl.clone(),
            limits: chirp_server::limits::Limits::new(&config.limit_settings()),
            cluster: membership.clone(),
            owners: membership.as_ref().map(|_| Arc::clone(&owners)),
            node_name: repl_args.node_name.clone(),
            oauth_codes: Default::default(),
        });
        let token_path = config.admin_token_path();
        let token = chirp_server::admin_token::load_or_create(&token_path)
            .with_context(|| format!("the admin token {}", token_path.display()))?;
        let admin = Arc::new(AdminApp::new(
            Arc::clone(&node),
            Arc::clone(&metrics),
            repl.clone(),
            token,
        ));
        // Scripts and tests read these lines to learn the ports; the public one comes first.
        // One write, errors ignored: a reader that stops after the first line must not
        // bring the node down with EPIPE.
        let banner = format!(
            "chirp listening on http://{addr}\nchirp admin listening on http://{admin_addr}\n"
        );
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
        drop(out);
        tracing::info!(%addr, %admin_addr, "listening");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
        let stopped = |mut rx: tokio::sync::watch::Receiver<()>| async move {
            // Resolves on the signal, or if the sender is gone.
            let _ = rx.changed().await;
        };
        let admin_task = tokio::spawn(chirp_server::run_admin(
            admin_listener,
            admin,
            stopped(stop_rx.clone()),
        ));
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(());
        });
        chirp_server::run(
            listener,
            Arc::clone(&app),
            config.max_connections,
            stopped(stop_rx),
        )
        .await;
        let _ = admin_task.await;
        if let Some(task) = map_task {
            task.abort();
        }
        if let Some(task) = controller_task {
            task.abort();
        }
        if let Some(membership) = membership {
            membership.leave().await;
        }
        if let Some(repl) = repl {
            repl.shutdown().await;
        }
        anyhow::Ok(app)
    })?;
    drop(node);
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match Arc::try_unwrap(app).ok().and_then(|app| {
        // Replication holds the node too; its tasks ended with the runtime.
        drop(app.repl);
        Arc::try_unwrap(app.node).ok()
    }) {
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
