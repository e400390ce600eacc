//! The cluster's control plane: what Chirp keeps in etcd and how it is read and changed.
//!
//! It owns the cluster map's types and their stored form ([`map`]: `config`, `members/<node>`,
//! `nodes/<node>`, `shards/<id>`, each a versioned JSON value under `/chirp/<cluster>/`, laid
//! out by [`keys`]), the [`ControlPlane`] trait over them with two implementations,
//! [`EtcdControlPlane`] (a real etcd, through the `etcd-client` crate) and
//! [`MemoryControlPlane`] (in-process, deterministic, leases expired by hand), which one
//! conformance suite (`tests/conformance.rs`) holds to the same behaviour, the pure
//! [`placement`] planner that shares the shards out when the first nodes are added, and the
//! operator steps built on them ([`admin`]: adding nodes, the status report).
//!
//! It does not own what a node does with the map (opening shards in the roles it names,
//! routing, replication: that is the engine's placement layer and `chirp-replication`), and it
//! runs no controller yet: nothing here moves shards or fails them over. The rule that keeps
//! the map safe is that `shards/<id>` only ever changes by a transaction comparing the
//! `mod_revision` the writer read ([`ControlPlane::update_shards`]); a lost race is
//! [`Error::Conflict`], never a silent overwrite.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod admin;
mod codec;
pub mod controller;
pub mod etcd;
pub mod keys;
pub mod map;
pub mod memory;
pub mod moves;
pub mod placement;
pub mod plane;
pub mod rebalance;

pub use etcd::EtcdControlPlane;
pub use map::{
    ClusterConfig, ClusterMap, Controller, ControllerInfo, Handover, Member, MemberState, Move,
    MoveState, NodeInfo, ShardAssignment, ShardUpdate, VersionedShard, MOVE_ATTEMPTS,
};
pub use memory::MemoryControlPlane;
pub use placement::initial_placement;
pub use plane::{ControlPlane, MapWatch, Registration};

/// What a control-plane operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `create_config` found a config already there.
    #[error("cluster {cluster:?} already exists (its config is in the control plane)")]
    ConfigExists {
        /// The cluster's name.
        cluster: String,
    },
    /// An operation that needs the cluster's config found none.
    #[error(
        "cluster {cluster:?} does not exist (no config; create it with `chirpctl cluster create`)"
    )]
    NoConfig {
        /// The cluster's name.
        cluster: String,
    },
    /// A shard transaction lost a race: these shards' `mod_revision`s were not the ones the
    /// writer read. Nothing was written; read the map again and redo the change.
    #[error("the shard map changed under this update (shards {shards:?}); nothing was written")]
    Conflict {
        /// The shards whose revision differed.
        shards: Vec<u32>,
    },
    /// Another live process is registered under this node name.
    #[error("node {node:?} is already registered by a live process")]
    AlreadyRegistered {
        /// The node name.
        node: String,
    },
    /// A name or setting that cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// A stored value that does not decode.
    #[error("{key}: {reason}")]
    Corrupt {
        /// The key it was read from.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The control plane could not be reached or refused the request.
    #[error("etcd: {0}")]
    Unavailable(String),
    /// A controller's transaction found another term in `controller` (it was deposed, or
    /// never elected): nothing was written.
    #[error("not the controller (its term {term} is over); nothing was written")]
    NotController {
        /// The term the writer held.
        term: u64,
    },
    /// A watch ended (the connection broke, or its start was compacted away); read the map
    /// again and watch anew.
    #[error("the map watch ended: {0}")]
    WatchLost(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Checks a cluster or node name: 1 to 63 of `[A-Za-z0-9._-]`, starting with a letter or
/// digit, so it can never reach outside its key (`/`) or be confused with one.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{what} name {name:?}: use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["a", "node-1", "n1.example_x", &"x".repeat(63)] {
            assert!(check_name("node", good).is_ok(), "{good}");
        }
        for bad in ["", "-a", ".a", "a/b", "a b", "é", &"x".repeat(64)] {
            assert!(
                matches!(check_name("node", bad), Err(Error::Invalid(_))),
                "{bad}"
            );
        }
    }
}
