//! Operator steps over a [`ControlPlane`]: adding nodes (and creating the shard map with the
//! first ones) and the status report. `chirpctl` is a thin command line over these.

use serde::Serialize;

use crate::map::{ClusterMap, Member, MemberState, ShardUpdate};
use crate::placement::initial_placement;
use crate::plane::ControlPlane;
use crate::{check_name, Error, Result};

/// What [`add_nodes`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddReport {
    /// The nodes written to `members/`, in name order.
    pub added: Vec<String>,
    /// Shards created by this call: the whole map when these were the cluster's first
    /// nodes, else 0 (later nodes hold nothing until a rebalance moves shards to them).
    pub shards_created: u32,
    /// The revision after the last write.
    pub revision: u64,
}

/// Adds `names` as active members, with the addresses each registered under `nodes/<name>`
/// (so each must be running and registered). If the cluster has no shards yet, creates the
/// whole map over these nodes with [`initial_placement`] in one transaction; a concurrent
/// creation makes that transaction fail with [`Error::Conflict`] and nothing of the map is
/// written (the members stay written: adding them again is harmless).
pub async fn add_nodes(plane: &dyn ControlPlane, names: &[String]) -> Result<AddReport> {
    if names.is_empty() {
        return Err(Error::Invalid("name at least one node to add".into()));
    }
    let mut names: Vec<String> = names.to_vec();
    names.sort();
    names.dedup();
    for name in &names {
        check_name("node", name)?;
    }
    let map = plane.read_map().await?;
    let config = map.config.ok_or_else(|| Error::NoConfig {
        cluster: plane.cluster().to_string(),
    })?;
    let mut members = Vec::new();
    for name in &names {
        let live = map.nodes.get(name).ok_or_else(|| {
            Error::Invalid(format!(
                "node {name:?} is not running in cluster {:?}: start it with \
                 `chirp serve --etcd ... --cluster {} --node-name {name}`; `node add` takes \
                 its addresses from its registration",
                plane.cluster(),
                plane.cluster()
            ))
        })?;
        if let Some(m) = map.members.get(name) {
            if m.state == MemberState::Removed {
                return Err(Error::Invalid(format!(
                    "node {name:?} was removed from the cluster; a removed name is not reused"
                )));
            }
        }
        members.push(Member {
            name: name.clone(),
            api: live.api.clone(),
            admin: live.admin.clone(),
            repl: live.repl.clone(),
            state: map
                .members
                .get(name)
                .map_or(MemberState::Active, |m| m.state),
        });
    }
    let mut revision = map.revision;
    for member in &members {
        revision = plane.put_member(member).await?;
    }
    let mut shards_created = 0;
    if map.shards.is_empty() {
        let plan = initial_placement(config.shards, config.rf, config.min_sync, &names);
        let updates: Vec<ShardUpdate> = plan
            .into_iter()
            .enumerate()
            .map(|(id, assignment)| ShardUpdate {
                id: id as u32,
                expected_mod_revision: 0,
                assignment,
            })
            .collect();
        revision = plane.update_shards(&updates).await?;
        shards_created = updates.len() as u32;
    }
    Ok(AddReport {
        added: names,
        shards_created,
        revision,
    })
}

/// `chirpctl cluster status --json`: exactly these fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The revision the map was read at.
    pub revision: u64,
    /// The elected controller (none runs yet: always null).
    pub controller: Option<String>,
    /// Members and live nodes, by name.
    pub nodes: Vec<NodeStatus>,
    /// Every shard, by id.
    pub shards: Vec<ShardStatus>,
}

/// One node in [`Status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    /// The node's name.
    pub name: String,
    /// Its public API address (from its membership, else its registration).
    pub api: String,
    /// Whether it is registered under a live lease.
    pub alive: bool,
    /// Its member state; null for a running node not (yet) added.
    pub state: Option<MemberState>,
}

/// One shard in [`Status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardStatus {
    /// The shard id.
    pub id: u32,
    /// Its epoch.
    pub epoch: u64,
    /// Its primary.
    pub primary: String,
    /// Its replicas.
    pub replicas: Vec<String>,
    /// Its sync set.
    pub sync: Vec<String>,
    /// Its learners.
    pub learners: Vec<String>,
}

impl Status {
    /// The report of a map.
    pub fn of(map: &ClusterMap) -> Status {
        let mut nodes: Vec<NodeStatus> = map
            .members
            .values()
            .map(|m| NodeStatus {
                name: m.name.clone(),
                api: m.api.clone(),
                alive: map.nodes.contains_key(&m.name),
                state: Some(m.state),
            })
            .collect();
        nodes.extend(
            map.nodes
                .values()
                .filter(|n| !map.members.contains_key(&n.name))
                .map(|n| NodeStatus {
                    name: n.name.clone(),
                    api: n.api.clone(),
                    alive: true,
                    state: None,
                }),
        );
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let shards = map
            .shards
            .values()
            .map(|s| ShardStatus {
                id: s.id,
                epoch: s.assignment.epoch,
                primary: s.assignment.primary.clone(),
                replicas: s.assignment.replicas.clone(),
                sync: s.assignment.sync.clone(),
                learners: s.assignment.learners.clone(),
            })
            .collect();
        Status {
            revision: map.revision,
            controller: None,
            nodes,
            shards,
        }
    }
}
