//! The replication flags of `chirp serve` and starting replication from them (see README,
//! "Replication"). Flags and environment only: they are not part of the TOML config.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chirp_engine::Node;
use chirp_replication::{AckMode, Replication};

/// Replication flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ReplArgs {
    /// Where this node's replication endpoint (QUIC) listens; replication is off without it.
    #[arg(long, env = "CHIRP_REPL_LISTEN")]
    pub repl_listen: Option<SocketAddr>,
    /// Follow the primary whose replication endpoint is at ADDR (this node starts as replica).
    #[arg(long, env = "CHIRP_REPLICA_OF", requires = "repl_listen")]
    pub replica_of: Option<SocketAddr>,
    /// This node's name (its certificate names it).
    #[arg(long, env = "CHIRP_NODE_NAME", default_value = "chirp")]
    pub node_name: String,
    /// The cluster's name; nodes of another cluster are refused.
    #[arg(long, env = "CHIRP_CLUSTER", default_value = "chirp")]
    pub cluster: String,
    /// Directory with ca.pem, node.pem and node.key (from `chirpctl cert`).
    #[arg(long, env = "CHIRP_TLS_DIR", default_value = "./tls")]
    pub tls_dir: PathBuf,
    /// When a write is acknowledged: async (fsynced here) or sync (also durable on a replica).
    #[arg(long, env = "CHIRP_ACK", value_enum, default_value = "async")]
    pub ack: Ack,
    /// How long a sync-mode write waits for a replica before failing with 503.
    #[arg(long, env = "CHIRP_SYNC_TIMEOUT_MS", default_value_t = 5000)]
    pub sync_timeout_ms: u64,
    /// Oplog entries kept per shard at most, even for a replica that has not caught up.
    #[arg(long, env = "CHIRP_OPLOG_RETAIN", default_value_t = 1_000_000)]
    pub oplog_retain: u64,
}

impl Default for ReplArgs {
    /// The same defaults as the flags (replication off).
    fn default() -> Self {
        ReplArgs {
            repl_listen: None,
            replica_of: None,
            node_name: "chirp".into(),
            cluster: "chirp".into(),
            tls_dir: PathBuf::from("./tls"),
            ack: Ack::Async,
            sync_timeout_ms: 5000,
            oplog_retain: 1_000_000,
        }
    }
}

/// The acknowledgement mode flag.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Ack {
    /// Acknowledged once fsynced here.
    Async,
    /// Acknowledged once a replica has it too.
    Sync,
}

/// Starts replication if `--repl-listen` was given; `api` is this node's public address.
pub async fn start(
    args: &ReplArgs,
    data: &Path,
    node: &Arc<Node>,
    api: SocketAddr,
) -> Result<Option<Arc<Replication>>, chirp_replication::Error> {
    let Some(listen) = args.repl_listen else {
        return Ok(None);
    };
    let config = chirp_replication::Config {
        node_name: args.node_name.clone(),
        cluster: args.cluster.clone(),
        listen,
        api: format!("http://{api}"),
        tls_dir: args.tls_dir.clone(),
        primary: args.replica_of,
        ack: match args.ack {
            Ack::Async => AckMode::Async,
            Ack::Sync => AckMode::Sync,
        },
        sync_timeout: std::time::Duration::from_millis(args.sync_timeout_ms),
        oplog_retain: args.oplog_retain.max(1),
        data_dir: data.to_path_buf(),
    };
    Replication::start(Arc::clone(node), config).await.map(Some)
}
