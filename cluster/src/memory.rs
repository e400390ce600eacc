//! [`MemoryControlPlane`]: the control plane in process memory, for deterministic tests of
//! the rules built on the map (Vitess's memorytopo). It keeps what etcd keeps, the same way:
//! stored bytes (so the same codec is exercised), one global revision raised by every write
//! or transaction, a `mod_revision` per key, and leases whose keys vanish with them. Time
//! plays no part: a lease lives until its registration is closed or dropped, or until a test
//! expires it with [`MemoryControlPlane::expire_lease`] or [`MemoryControlPlane::expire_node`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::keys::Keys;
use crate::map::{
    check_updates, ClusterConfig, ClusterMap, Controller, ControllerInfo, Member, NodeInfo,
    ShardUpdate,
};
use crate::plane::{ControlPlane, MapWatch, Registration, Release, WatchEvent};
use crate::{check_name, codec, Error, Result};

struct Entry {
    value: Vec<u8>,
    mod_revision: u64,
    lease: Option<i64>,
}

#[derive(Default)]
struct State {
    revision: u64,
    kv: BTreeMap<String, Entry>,
    leases: BTreeMap<i64, Duration>,
    next_lease: i64,
}

struct Store {
    state: Mutex<State>,
    changes: watch::Sender<WatchEvent>,
}

impl Store {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Raises the revision for one write (or transaction) and tells the watchers.
    fn bump(&self, state: &mut State) -> u64 {
        state.revision += 1;
        self.changes
            .send_replace(WatchEvent::Changed(state.revision));
        state.revision
    }

    fn put(&self, state: &mut State, key: String, value: Vec<u8>, lease: Option<i64>) -> u64 {
        let revision = self.bump(state);
        state.kv.insert(
            key,
            Entry {
                value,
                mod_revision: revision,
                lease,
            },
        );
        revision
    }

    fn revoke(&self, lease: i64) -> bool {
        let mut state = self.lock();
        if state.leases.remove(&lease).is_none() {
            return false;
        }
        let before = state.kv.len();
        state.kv.retain(|_, e| e.lease != Some(lease));
        if state.kv.len() != before {
            self.bump(&mut state);
        }
        true
    }
}

/// An in-memory control plane for one cluster. Clones share the same store, like several
/// clients of one etcd.
#[derive(Clone)]
pub struct MemoryControlPlane {
    store: Arc<Store>,
    cluster: String,
    keys: Keys,
}

impl MemoryControlPlane {
    /// An empty store for cluster `cluster`.
    pub fn new(cluster: &str) -> Result<MemoryControlPlane> {
        check_name("cluster", cluster)?;
        let (changes, _) = watch::channel(WatchEvent::Changed(0));
        Ok(MemoryControlPlane {
            store: Arc::new(Store {
                state: Mutex::new(State::default()),
                changes,
            }),
            cluster: cluster.to_string(),
            keys: Keys::new(cluster),
        })
    }

    /// Expires a lease now, as etcd does when its TTL runs out: its keys are deleted.
    /// Returns whether the lease existed.
    pub fn expire_lease(&self, lease: i64) -> bool {
        self.store.revoke(lease)
    }

    /// Expires the lease that holds `nodes/<node>`; returns whether there was one.
    pub fn expire_node(&self, node: &str) -> bool {
        let lease = self
            .store
            .lock()
            .kv
            .get(&self.keys.node(node))
            .and_then(|e| e.lease);
        lease.is_some_and(|lease| self.store.revoke(lease))
    }

    /// Every (key, value, mod_revision) under `prefix`, and the current revision.
    fn range(&self, prefix: &str) -> (u64, Vec<(String, Vec<u8>, u64)>) {
        let state = self.store.lock();
        let entries = state
            .kv
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, e)| (k.clone(), e.value.clone(), e.mod_revision))
            .collect();
        (state.revision, entries)
    }

    fn decode_all<T: serde::de::DeserializeOwned>(&self, prefix: &str) -> Result<Vec<T>> {
        self.range(prefix)
            .1
            .iter()
            .map(|(k, v, _)| codec::decode(k, v))
            .collect()
    }
}

struct MemoryLease {
    store: Arc<Store>,
    lease: i64,
}

#[async_trait]
impl Release for MemoryLease {
    async fn revoke(self: Box<Self>) -> Result<()> {
        self.store.revoke(self.lease);
        Ok(())
    }

    fn revoke_soon(self: Box<Self>) {
        self.store.revoke(self.lease);
    }

    fn abandon(self: Box<Self>) {}
}

#[async_trait]
impl ControlPlane for MemoryControlPlane {
    fn cluster(&self) -> &str {
        &self.cluster
    }

    async fn create_config(&self, config: &ClusterConfig) -> Result<u64> {
        config.validate()?;
        let mut state = self.store.lock();
        let key = self.keys.config();
        if state.kv.contains_key(&key) {
            return Err(Error::ConfigExists {
                cluster: self.cluster.clone(),
            });
        }
        Ok(self.store.put(&mut state, key, codec::encode(config), None))
    }

    async fn config(&self) -> Result<Option<ClusterConfig>> {
        let key = self.keys.config();
        let state = self.store.lock();
        state
            .kv
            .get(&key)
            .map(|e| codec::decode(&key, &e.value))
            .transpose()
    }

    async fn put_member(&self, member: &Member) -> Result<u64> {
        check_name("node", &member.name)?;
        let mut state = self.store.lock();
        Ok(self.store.put(
            &mut state,
            self.keys.member(&member.name),
            codec::encode(member),
            None,
        ))
    }

    async fn members(&self) -> Result<Vec<Member>> {
        self.decode_all(&self.keys.members())
    }

    async fn register(&self, node: &NodeInfo, ttl: Duration) -> Result<Registration> {
        check_name("node", &node.name)?;
        let key = self.keys.node(&node.name);
        let mut state = self.store.lock();
        if state.kv.contains_key(&key) {
            return Err(Error::AlreadyRegistered {
                node: node.name.clone(),
            });
        }
        state.next_lease += 1;
        let lease = state.next_lease;
        state.leases.insert(lease, ttl);
        self.store
            .put(&mut state, key, codec::encode(node), Some(lease));
        let release = MemoryLease {
            store: Arc::clone(&self.store),
            lease,
        };
        // Leases here are expired by hand, never by time.
        let revision = state.revision;
        Ok(Registration::new(
            node.name.clone(),
            crate::plane::LeaseClock::new(None, revision, lease),
            Box::new(release),
        ))
    }

    async fn live_nodes(&self) -> Result<Vec<NodeInfo>> {
        self.decode_all(&self.keys.nodes())
    }

    async fn read_map(&self) -> Result<ClusterMap> {
        let (revision, entries) = self.range(self.keys.prefix());
        ClusterMap::from_entries(
            &self.keys,
            revision,
            entries
                .iter()
                .map(|(k, v, r)| (k.as_str(), v.as_slice(), *r)),
        )
    }

    async fn campaign(&self, node: &str, lease: i64) -> Result<Controller> {
        check_name("node", node)?;
        let key = self.keys.controller();
        let mut state = self.store.lock();
        if !state.kv.contains_key(&key) {
            if !state.leases.contains_key(&lease) {
                return Err(Error::Unavailable(format!("lease {lease} not found")));
            }
            let info = ControllerInfo {
                name: node.to_string(),
            };
            self.store
                .put(&mut state, key.clone(), codec::encode(&info), Some(lease));
        }
        let entry = state
            .kv
            .get(&key)
            .ok_or_else(|| Error::Unavailable("the controller key vanished".into()))?;
        let info: ControllerInfo = codec::decode(&key, &entry.value)?;
        Ok(Controller {
            name: info.name,
            term: entry.mod_revision,
        })
    }

    async fn resign(&self, term: u64) -> Result<()> {
        let key = self.keys.controller();
        let mut state = self.store.lock();
        if state.kv.get(&key).is_some_and(|e| e.mod_revision == term) {
            state.kv.remove(&key);
            self.store.bump(&mut state);
        }
        Ok(())
    }

    async fn update_shards_as(&self, term: u64, updates: &[ShardUpdate]) -> Result<u64> {
        check_updates(updates)?;
        let mut state = self.store.lock();
        let held = state
            .kv
            .get(&self.keys.controller())
            .map_or(0, |e| e.mod_revision);
        if held != term {
            return Err(Error::NotController { term });
        }
        self.update_locked(&mut state, updates)
    }

    async fn update_shards(&self, updates: &[ShardUpdate]) -> Result<u64> {
        check_updates(updates)?;
        let mut state = self.store.lock();
        self.update_locked(&mut state, updates)
    }

    async fn watch(&self, after: u64) -> Result<MapWatch> {
        Ok(MapWatch::new(self.store.changes.subscribe(), after, None))
    }
}

impl MemoryControlPlane {
    fn update_locked(&self, state: &mut State, updates: &[ShardUpdate]) -> Result<u64> {
        let conflicts: Vec<u32> = updates
            .iter()
            .filter(|u| {
                let current = state
                    .kv
                    .get(&self.keys.shard(u.id))
                    .map_or(0, |e| e.mod_revision);
                current != u.expected_mod_revision
            })
            .map(|u| u.id)
            .collect();
        if !conflicts.is_empty() {
            return Err(Error::Conflict { shards: conflicts });
        }
        if updates.is_empty() {
            return Ok(state.revision);
        }
        // One revision for the whole transaction, as etcd does.
        let revision = self.store.bump(state);
        for u in updates {
            state.kv.insert(
                self.keys.shard(u.id),
                Entry {
                    value: codec::encode(&u.assignment),
                    mod_revision: revision,
                    lease: None,
                },
            );
        }
        Ok(revision)
    }
}
