//! A data dir's manifest and what a node opens from it.
//!
//! A standalone node's dir holds every shard of its logical count, made together with the
//! manifest; a shard missing from such a dir is an error, never recreated empty. A cluster
//! node's dir records its cluster and the cluster's shard count, and holds the shards the map
//! gave it: they are opened (and a new one created) as the map assigns them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids;
use crate::node::NodeConfig;
use crate::placement::ShardId;

/// File name of the data dir's manifest.
pub(crate) const MANIFEST: &str = "chirp.json";

/// The data dir's manifest: fixes the shard count chosen when the dir (or its cluster) was
/// made.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Manifest {
    format: u32,
    /// The logical shard count.
    pub(crate) shards: usize,
    /// The cluster a cluster node's dir belongs to; absent for a standalone node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cluster: Option<String>,
}

/// The directory of shard `s` in a data dir.
pub(crate) fn shard_dir(data_dir: &Path, s: ShardId) -> PathBuf {
    data_dir.join("shards").join(format!("{s:03}"))
}

/// Reads a data dir's manifest; None when the dir has none.
pub(crate) fn read_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join(MANIFEST);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let m: Manifest = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?;
            if m.format != 1 || m.shards == 0 || m.shards > ids::MAX_SHARDS {
                return Err(Error::Corrupt(format!("{}: unsupported", path.display())));
            }
            Ok(Some(m))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Writes the manifest of a new data dir, atomically and durably (the rename is made durable
/// by syncing the directory). A standalone dir's is written after its shards exist: a dir
/// with a manifest must hold every shard it names.
pub(crate) fn write_manifest(dir: &Path, m: &Manifest) -> Result<()> {
    let body = serde_json::to_vec_pretty(m).map_err(|e| Error::Corrupt(e.to_string()))?;
    crate::durable::write_atomic(&dir.join(MANIFEST), &body)
}

/// What a node opens from its data dir.
pub(crate) struct Plan {
    /// The manifest to write, for a new dir (after its first shards exist).
    pub(crate) fresh: Option<Manifest>,
    /// The logical shard count.
    pub(crate) count: usize,
    /// The shards to open now, in order.
    pub(crate) open: Vec<ShardId>,
}

/// Decides what a node opens: an existing dir keeps its count (and, for a cluster node, must
/// belong to the same cluster); a dir without a manifest is made with the configured count
/// when `create` is set.
pub(crate) fn plan(config: &NodeConfig) -> Result<Plan> {
    let dir = &config.data_dir;
    let existing = read_manifest(dir)?;
    let (count, fresh) = match existing {
        Some(m) => {
            if m.cluster != config.cluster {
                return Err(Error::invalid(
                    "data",
                    format!(
                        "{} belongs to {}, not to {}",
                        dir.display(),
                        describe(m.cluster.as_deref()),
                        describe(config.cluster.as_deref())
                    ),
                ));
            }
            if config.cluster.is_some() && m.shards != config.shards {
                return Err(Error::invalid(
                    "shards",
                    format!(
                        "{} was made for {} shards, the cluster has {}",
                        dir.display(),
                        m.shards,
                        config.shards
                    ),
                ));
            }
            (m.shards, None)
        }
        None if !config.create => {
            return Err(Error::invalid(
                "data",
                format!("{} holds no Chirp data (no {MANIFEST})", dir.display()),
            ))
        }
        None if config.shards == 0 || config.shards > ids::MAX_SHARDS => {
            return Err(Error::invalid(
                "shards",
                format!("must be 1..={}", ids::MAX_SHARDS),
            ))
        }
        None => (
            config.shards,
            Some(Manifest {
                format: 1,
                shards: config.shards,
                cluster: config.cluster.clone(),
            }),
        ),
    };
    let open = match (&config.cluster, &config.hold) {
        (None, _) => (0..count).collect(),
        (Some(_), None) => Vec::new(),
        (Some(_), Some(hold)) => {
            if let Some(bad) = hold.iter().find(|&&s| s >= count) {
                return Err(Error::invalid(
                    "shard",
                    format!("no shard {bad} (the cluster has {count})"),
                ));
            }
            let mut hold = hold.clone();
            hold.sort_unstable();
            hold.dedup();
            hold
        }
    };
    Ok(Plan { fresh, count, open })
}

fn describe(cluster: Option<&str>) -> String {
    match cluster {
        Some(name) => format!("cluster {name:?}"),
        None => "a standalone node".into(),
    }
}
