//! The cluster map: its values as stored (see [`crate::keys`] for where) and the whole map as
//! read at one revision.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::keys::{Key, Keys};
use crate::{Error, Result};

/// The most shards a cluster can have: tweet ids carry 10 shard bits.
pub const MAX_SHARDS: u32 = 1024;

/// `config`: fixed when the cluster is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// Logical shards (user → shard is a function of the user id and this count).
    pub shards: u32,
    /// Copies of each shard (the primary and its replicas).
    pub rf: u32,
    /// Replicas in each shard's sync set: a write is acknowledged once they have it.
    pub min_sync: u32,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            shards: 64,
            rf: 3,
            min_sync: 1,
        }
    }
}

impl ClusterConfig {
    /// Checks the ranges: shards 1..=1024, rf ≥ 1, min_sync ≤ rf (the sync set is made of
    /// replicas, so with rf copies at most rf - 1 are ever in it; a larger min_sync is capped).
    pub fn validate(&self) -> Result<()> {
        if self.shards == 0 || self.shards > MAX_SHARDS {
            return Err(Error::Invalid(format!(
                "shards must be 1 to {MAX_SHARDS}, not {}",
                self.shards
            )));
        }
        if self.rf == 0 {
            return Err(Error::Invalid("rf must be at least 1".into()));
        }
        if self.min_sync > self.rf {
            return Err(Error::Invalid(format!(
                "min_sync ({}) cannot exceed rf ({})",
                self.min_sync, self.rf
            )));
        }
        Ok(())
    }
}

/// What the operator has decided about a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// Holds shards and takes new ones.
    Active,
    /// Being emptied: takes no new shards.
    Draining,
    /// Out of the cluster.
    Removed,
}

impl MemberState {
    /// The lowercase name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Active => "active",
            MemberState::Draining => "draining",
            MemberState::Removed => "removed",
        }
    }
}

/// `members/<node>`: a node the operator has admitted, with its addresses (socket
/// addresses as strings, `host:port`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The node's name (its certificate names it too).
    pub name: String,
    /// The public HTTP API.
    pub api: String,
    /// The admin listener.
    pub admin: String,
    /// The replication endpoint (QUIC), if the node runs replication.
    pub repl: Option<String>,
    /// Active, draining or removed.
    pub state: MemberState,
}

/// `nodes/<node>`: written by a running node under its lease, so present means alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's name.
    pub name: String,
    /// The public HTTP API.
    pub api: String,
    /// The admin listener.
    pub admin: String,
    /// The replication endpoint (QUIC), if the node runs replication.
    pub repl: Option<String>,
    /// When this process started, in milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    /// The `chirp` build that runs it.
    pub software: String,
}

/// `controller`: the node elected to run failovers, written under its lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerInfo {
    /// The node's name.
    pub name: String,
}

/// The elected controller as read from the map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controller {
    /// The node holding the election.
    pub name: String,
    /// Its term: the `controller` key's `mod_revision`. Every transaction the controller
    /// writes compares it, so a deposed controller's writes fail.
    pub term: u64,
}

/// `shards/<id>`: who holds one shard, in which role, at which epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardAssignment {
    /// Raised by every change of primary; replicas refuse older epochs.
    pub epoch: u64,
    /// The node taking writes.
    pub primary: String,
    /// The other nodes holding a full copy (never the primary).
    pub replicas: Vec<String>,
    /// The replicas whose acknowledgement a write waits for (a subset of `replicas`).
    pub sync: Vec<String>,
    /// Nodes catching up from a checkpoint, not yet replicas.
    pub learners: Vec<String>,
    /// A planned handover asked of the primary (`chirpctl shard failover`); absent when
    /// none is pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover: Option<Handover>,
    /// A copy moving from one node to another (`chirpctl shard move`); absent when none is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moving: Option<Move>,
}

/// A copy of a shard moving from node `from` to node `to`, kept in the shard's record (so
/// each step changes the assignment and the move's state in one transaction) and carried
/// out by the elected controller, one step per round, while every member is alive:
/// 1. [`MoveState::CatchingUp`]: `to` joined as a learner; it bootstraps from a checkpoint
///    of the primary when the oplog no longer reaches back, then tails the oplog; the
///    controller makes it a replica once it is within a few entries;
/// 2. [`MoveState::InSync`]: `to` is a replica in the sync set (its primary takes it in once
///    it holds every write), so it holds every acknowledged write from then on;
/// 3. [`MoveState::Cutover`], only when `to` becomes the primary: a planned handover (see
///    [`Handover`]) makes it the primary at the next epoch; one called off goes back to
///    `InSync` and is tried again, up to [`MOVE_ATTEMPTS`] times, then the move is undone;
/// 4. [`MoveState::Cleanup`]: one transaction takes `from`'s copy out of the shard (it then
///    closes its copy and moves its files aside) and ends the move.
///
/// Until the cutover's transaction, aborting takes `to`'s copy back out and leaves the shard
/// as it was; after it, the move can only finish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// The node giving its copy up.
    pub from: String,
    /// The node taking a copy.
    pub to: String,
    /// Whether `to` ends as the shard's primary.
    pub primary: bool,
    /// The step it is at.
    pub state: MoveState,
    /// When it was asked for, in Unix milliseconds.
    pub started_ms: u64,
    /// Handovers called off so far.
    #[serde(default)]
    pub attempts: u32,
}

/// How many planned handovers a move tries before it is undone.
pub const MOVE_ATTEMPTS: u32 = 3;

/// The step a [`Move`] is at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveState {
    /// The target is a learner or a replica not yet in the sync set.
    CatchingUp,
    /// The target is in the sync set.
    InSync,
    /// A planned handover to the target is asked of the primary.
    Cutover,
    /// The source's copy is taken out next.
    Cleanup,
}

impl MoveState {
    /// The name printed and stored.
    pub fn name(self) -> &'static str {
        match self {
            MoveState::CatchingUp => "catching_up",
            MoveState::InSync => "in_sync",
            MoveState::Cutover => "cutover",
            MoveState::Cleanup => "cleanup",
        }
    }
}

/// A planned change of primary, written into `shards/<id>` by the operator and carried out
/// by the primary itself: it closes its write gate, waits until `to` holds its last LSN, and
/// makes `to` the primary at epoch + 1 in one transaction comparing the shard's
/// `mod_revision`. If `to` does not catch up within `timeout_ms` the primary removes the
/// request and takes writes again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handover {
    /// The replica that becomes the primary.
    pub to: String,
    /// How long the primary waits, gate closed, for `to` to catch up.
    pub timeout_ms: u64,
}

impl ShardAssignment {
    /// The primary then the replicas.
    pub fn copies(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.primary.as_str()).chain(self.replicas.iter().map(String::as_str))
    }

    /// The assignment once the handover to `to` is done: `to` is the primary at the next
    /// epoch, the old primary one of the replicas (in `to`'s place in the sync set, if `to`
    /// was in it: it holds every acknowledged write), learners unchanged, no handover
    /// pending.
    pub fn handed_over(&self, to: &str) -> ShardAssignment {
        let old = self.primary.clone();
        let mut replicas: Vec<String> = self
            .replicas
            .iter()
            .filter(|r| r.as_str() != to)
            .cloned()
            .collect();
        replicas.push(old.clone());
        let sync = self
            .sync
            .iter()
            .map(|s| if s == to { old.clone() } else { s.clone() })
            .collect();
        ShardAssignment {
            epoch: self.epoch + 1,
            primary: to.to_string(),
            replicas,
            sync,
            learners: self.learners.clone(),
            handover: None,
            moving: self.moving.clone(),
        }
    }
}

/// A shard's assignment with the revision it was last changed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedShard {
    /// The shard id.
    pub id: u32,
    /// The control plane's `mod_revision` of `shards/<id>`: what an update compares.
    pub mod_revision: u64,
    /// The assignment.
    pub assignment: ShardAssignment,
}

/// One change in a shard transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardUpdate {
    /// The shard id.
    pub id: u32,
    /// The `mod_revision` the writer read; 0 means the shard must not exist yet.
    pub expected_mod_revision: u64,
    /// The new assignment.
    pub assignment: ShardAssignment,
}

/// Refuses a transaction that names a shard twice or one past [`MAX_SHARDS`].
pub(crate) fn check_updates(updates: &[ShardUpdate]) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for u in updates {
        if u.id >= MAX_SHARDS {
            return Err(Error::Invalid(format!("shard id {} is out of range", u.id)));
        }
        if !seen.insert(u.id) {
            return Err(Error::Invalid(format!(
                "shard {} appears twice in one update",
                u.id
            )));
        }
    }
    Ok(())
}

/// The whole map, read in one request at one revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterMap {
    /// The control plane's revision the map was read at; a watch from here misses nothing.
    pub revision: u64,
    /// The config, if the cluster exists.
    pub config: Option<ClusterConfig>,
    /// Members by name.
    pub members: BTreeMap<String, Member>,
    /// Live nodes by name.
    pub nodes: BTreeMap<String, NodeInfo>,
    /// Shards by id.
    pub shards: BTreeMap<u32, VersionedShard>,
    /// The elected controller, if one holds the election.
    pub controller: Option<Controller>,
}

impl ClusterMap {
    /// Builds the map from the key-value pairs under the cluster's prefix, each with its
    /// `mod_revision`; keys this version does not know are ignored.
    pub fn from_entries<'a>(
        keys: &Keys,
        revision: u64,
        entries: impl IntoIterator<Item = (&'a str, &'a [u8], u64)>,
    ) -> Result<ClusterMap> {
        let mut map = ClusterMap {
            revision,
            ..ClusterMap::default()
        };
        for (key, value, mod_revision) in entries {
            match keys.parse(key) {
                Key::Config => map.config = Some(codec::decode(key, value)?),
                Key::Member(name) => {
                    map.members
                        .insert(name.to_string(), codec::decode(key, value)?);
                }
                Key::Node(name) => {
                    map.nodes
                        .insert(name.to_string(), codec::decode(key, value)?);
                }
                Key::Shard(id) => {
                    let assignment = codec::decode(key, value)?;
                    map.shards.insert(
                        id,
                        VersionedShard {
                            id,
                            mod_revision,
                            assignment,
                        },
                    );
                }
                Key::Controller => {
                    let info: ControllerInfo = codec::decode(key, value)?;
                    map.controller = Some(Controller {
                        name: info.name,
                        term: mod_revision,
                    });
                }
                Key::Other => {}
            }
        }
        Ok(map)
    }
}

/// Unix time in milliseconds (for [`NodeInfo::started_at_ms`]).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_ranges() {
        assert!(ClusterConfig::default().validate().is_ok());
        for bad in [
            ClusterConfig {
                shards: 0,
                ..Default::default()
            },
            ClusterConfig {
                shards: 1025,
                ..Default::default()
            },
            ClusterConfig {
                rf: 0,
                ..Default::default()
            },
            ClusterConfig {
                rf: 2,
                min_sync: 3,
                shards: 4,
            },
        ] {
            assert!(matches!(bad.validate(), Err(Error::Invalid(_))), "{bad:?}");
        }
        let single = ClusterConfig {
            shards: 1024,
            rf: 1,
            min_sync: 1,
        };
        assert!(single.validate().is_ok());
    }

    #[test]
    fn a_handover_swaps_the_primary_with_its_target() {
        let a = ShardAssignment {
            epoch: 4,
            primary: "n1".into(),
            replicas: vec!["n2".into(), "n3".into()],
            sync: vec!["n2".into()],
            learners: vec!["n4".into()],
            handover: Some(Handover {
                to: "n2".into(),
                timeout_ms: 1000,
            }),
            moving: None,
        };
        let b = a.handed_over("n2");
        assert_eq!(b.epoch, 5);
        assert_eq!(b.primary, "n2");
        assert_eq!(b.replicas, vec!["n3".to_string(), "n1".to_string()]);
        assert_eq!(b.sync, vec!["n1".to_string()]);
        assert_eq!(b.learners, vec!["n4".to_string()]);
        assert_eq!(b.handover, None);
        // To a replica outside the sync set: the sync set stays.
        let c = a.handed_over("n3");
        assert_eq!(c.sync, vec!["n2".to_string()]);
        assert_eq!(c.replicas, vec!["n2".to_string(), "n1".to_string()]);
        // Stored without the field when none is pending; read back with and without.
        let stored: serde_json::Value = serde_json::from_slice(&codec::encode(&b)).expect("json");
        assert!(stored.get("handover").is_none(), "{stored}");
        let back: ShardAssignment = codec::decode("k", &codec::encode(&a)).expect("decode");
        assert_eq!(back, a);
    }

    #[test]
    fn member_state_is_stored_lowercase() {
        let m = Member {
            name: "n1".into(),
            api: "127.0.0.1:1".into(),
            admin: "127.0.0.1:2".into(),
            repl: None,
            state: MemberState::Draining,
        };
        let json: serde_json::Value = serde_json::from_slice(&codec::encode(&m)).expect("json");
        assert_eq!(json["state"], "draining");
        assert_eq!(json["version"], 1);
    }
}
