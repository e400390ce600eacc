//! Joining a cluster: `chirp serve --etcd URLS --cluster NAME --node-name N`. Flags and
//! environment only, like replication's (whose `--cluster` and `--node-name` name the node
//! here too): they are not part of the TOML config.
//!
//! A node with `--etcd` refuses to start unless the cluster exists (its `config` is in
//! etcd), registers `nodes/<N>` with its addresses under a lease kept alive every third of
//! its TTL, and follows the map: [`Membership::map`] always holds the latest one read. It
//! does not yet open shards as the map assigns them; that is the engine's placement layer,
//! which will read the map from here. Without `--etcd` none of this runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chirp_cluster::etcd::parse_endpoints;
use chirp_cluster::{ClusterMap, ControlPlane, Error, EtcdControlPlane, NodeInfo, Registration};
use tokio::sync::{watch, Mutex};

/// The cluster flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ClusterArgs {
    /// etcd endpoints of the cluster's control plane, comma-separated
    /// (http://host:port,...); the node then joins cluster --cluster as --node-name.
    /// Without it the node runs alone.
    #[arg(long, env = "CHIRP_ETCD")]
    pub etcd: Option<String>,
    /// Seconds the node's registration outlives its last keep-alive: how long a crashed
    /// node still looks alive. Tests shorten it.
    #[arg(long, env = "CHIRP_LEASE_TTL_SECS", default_value_t = 10)]
    pub lease_ttl_secs: u64,
}

impl Default for ClusterArgs {
    /// The same defaults as the flags (no cluster).
    fn default() -> Self {
        ClusterArgs {
            etcd: None,
            lease_ttl_secs: 10,
        }
    }
}

/// Connects to the control plane and checks that the cluster exists. `None` without
/// `--etcd`.
pub async fn connect(
    args: &ClusterArgs,
    cluster: &str,
) -> Result<Option<Arc<dyn ControlPlane>>, Error> {
    let Some(urls) = &args.etcd else {
        return Ok(None);
    };
    let plane = EtcdControlPlane::connect(&parse_endpoints(urls)?, cluster).await?;
    if plane.config().await?.is_none() {
        return Err(Error::NoConfig {
            cluster: cluster.to_string(),
        });
    }
    Ok(Some(Arc::new(plane)))
}

/// This node's place in the cluster: the control plane, its registration and the latest
/// map. What the engine's placement layer will be fed from.
pub struct Membership {
    /// The control plane.
    pub plane: Arc<dyn ControlPlane>,
    /// The latest map read (replaced whenever the control plane reports a change).
    pub map: watch::Receiver<Arc<ClusterMap>>,
    registration: Mutex<Option<Registration>>,
    follower: tokio::task::JoinHandle<()>,
}

impl Membership {
    /// Registers `node` under a lease of `ttl` and starts following the map.
    ///
    /// A name still held by a live lease is waited for up to one TTL (plus a second): a
    /// node restarted right after a crash finds its old registration until it lapses.
    pub async fn join(
        plane: Arc<dyn ControlPlane>,
        node: NodeInfo,
        ttl: Duration,
    ) -> Result<Arc<Membership>, Error> {
        let deadline = Instant::now() + ttl + Duration::from_secs(1);
        let registration = loop {
            match plane.register(&node, ttl).await {
                Err(Error::AlreadyRegistered { .. }) if Instant::now() < deadline => {
                    tracing::info!(node = %node.name, "the name is still registered; waiting for that lease to lapse");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                other => break other?,
            }
        };
        let first = plane.read_map().await?;
        tracing::info!(
            node = %node.name,
            cluster = plane.cluster(),
            revision = first.revision,
            shards = first.shards.len(),
            "joined the cluster"
        );
        let (tx, map) = watch::channel(Arc::new(first));
        let follower = tokio::spawn(follow(Arc::clone(&plane), tx));
        Ok(Arc::new(Membership {
            plane,
            map,
            registration: Mutex::new(Some(registration)),
            follower,
        }))
    }

    /// Leaves the cluster: revokes the registration (the node is no longer alive in the
    /// map) and stops following the map.
    pub async fn leave(&self) {
        self.follower.abort();
        if let Some(reg) = self.registration.lock().await.take() {
            // An unreachable etcd must not hold up the shutdown: the lease lapses anyway.
            match tokio::time::timeout(Duration::from_secs(5), reg.close()).await {
                Ok(Ok(())) => tracing::info!("left the cluster"),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "revoking the node's lease; it lapses after its TTL")
                }
                Err(_) => {
                    tracing::warn!("etcd did not answer; the node's lease lapses after its TTL")
                }
            }
        }
    }
}

/// Keeps `tx` at the latest map: waits for a change, reads the map again. When the watch
/// ends (etcd restarted, history compacted) or a read fails, a new watch starts from the
/// last map read, so a change in between is reported at once rather than missed.
async fn follow(plane: Arc<dyn ControlPlane>, tx: watch::Sender<Arc<ClusterMap>>) {
    loop {
        let after = tx.borrow().revision;
        match plane.watch(after).await {
            Ok(mut changes) => loop {
                if let Err(e) = changes.changed().await {
                    tracing::warn!(error = %e, "the map watch ended; watching again");
                    break;
                }
                match plane.read_map().await {
                    Ok(map) => {
                        tracing::debug!(revision = map.revision, "the map changed");
                        tx.send_replace(Arc::new(map));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the map; watching again");
                        break;
                    }
                }
            },
            Err(e) => tracing::warn!(error = %e, "watching the map; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
