//! The role a data dir last served in, persisted in `DATA/role.json`.
//!
//! A replica's data dir holds the primary's oplog and outbox. Opened as a primary, it would
//! run the primary's pending fan-out jobs and write oplog entries at LSNs the primary also
//! uses, in the primary's epoch, where the divergence check cannot see them. So the role is
//! part of the data dir: written when a node starts as a replica, on promotion and on
//! demotion, and read at every open (see `Node::open`).
//!
//! The file is small JSON with a format number, written atomically (temp file, fsync,
//! rename, directory fsync). A data dir without one predates the file and is a primary.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::node::{NodeConfig, NodeRole, OpenMode};

/// File name of the role file in a data dir.
pub const ROLE_FILE: &str = "role.json";
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct RoleDoc {
    format: u32,
    role: String,
}

fn name(role: NodeRole) -> &'static str {
    match role {
        NodeRole::Primary => "primary",
        NodeRole::Replica => "replica",
    }
}

/// The role persisted in `dir`, or None if the dir has no role file.
pub fn read_role(dir: &Path) -> Result<Option<NodeRole>> {
    let path = dir.join(ROLE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let corrupt = |why: String| Error::Corrupt(format!("{}: {why}", path.display()));
    let doc: RoleDoc = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    if doc.format != FORMAT {
        return Err(corrupt(format!("unsupported format {}", doc.format)));
    }
    match doc.role.as_str() {
        "primary" => Ok(Some(NodeRole::Primary)),
        "replica" => Ok(Some(NodeRole::Replica)),
        other => Err(corrupt(format!("unknown role {other:?}"))),
    }
}

/// Persists `role` in `dir`; durable when this returns. A no-op if it is already recorded.
pub fn write_role(dir: &Path, role: NodeRole) -> Result<()> {
    if read_role(dir).ok().flatten() == Some(role) {
        return Ok(());
    }
    let doc = RoleDoc {
        format: FORMAT,
        role: name(role).to_string(),
    };
    let body = serde_json::to_vec_pretty(&doc).map_err(|e| Error::Corrupt(e.to_string()))?;
    crate::durable::write_atomic(&dir.join(ROLE_FILE), &body)?;
    tracing::info!(dir = %dir.display(), role = name(role), "role recorded");
    Ok(())
}

/// The role a data dir opens in: [`NodeConfig::role`], except that a dir recorded as a
/// replica stays one. Records the role when serving.
pub(crate) fn settle_role(config: &NodeConfig) -> Result<NodeRole> {
    let dir = &config.data_dir;
    let recorded = read_role(dir)?;
    match config.mode {
        OpenMode::Inspect => Ok(recorded.unwrap_or(NodeRole::Primary)),
        OpenMode::Maintain => match (recorded, config.role) {
            (Some(NodeRole::Replica), _) | (_, NodeRole::Replica) => Err(Error::invalid(
                "data",
                format!(
                    "{} is a replica's data dir (see its {}): writes belong on its primary, \
                     since a replica's own writes would reuse the primary's log positions; \
                     run this against the primary, or start this node and promote it first",
                    dir.display(),
                    ROLE_FILE
                ),
            )),
            (_, NodeRole::Primary) => Ok(NodeRole::Primary),
        },
        OpenMode::Serve => {
            let role = match (recorded, config.role) {
                (Some(NodeRole::Replica), NodeRole::Primary) => {
                    tracing::warn!(
                        dir = %dir.display(),
                        "this data dir was last a replica: serving read-only; start with \
                         --replica-of to follow the primary, or promote this node"
                    );
                    NodeRole::Replica
                }
                (_, role) => role,
            };
            write_role(dir, role)?;
            Ok(role)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_what_it_did_not_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read_role(dir.path()).expect("read"), None);
        write_role(dir.path(), NodeRole::Replica).expect("write");
        assert_eq!(
            read_role(dir.path()).expect("read"),
            Some(NodeRole::Replica)
        );
        write_role(dir.path(), NodeRole::Primary).expect("write");
        assert_eq!(
            read_role(dir.path()).expect("read"),
            Some(NodeRole::Primary)
        );
        assert!(!dir.path().join("role.json.tmp").exists());
        for bad in [
            r#"{"format":2,"role":"primary"}"#,
            r#"{"format":1,"role":"leader"}"#,
            "not json",
        ] {
            std::fs::write(dir.path().join(ROLE_FILE), bad).expect("write");
            assert!(matches!(read_role(dir.path()), Err(Error::Corrupt(_))));
        }
    }
}
