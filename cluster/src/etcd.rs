//! [`EtcdControlPlane`]: the control plane on a real etcd (v3 API, through `etcd-client`).
//!
//! Conditional writes are etcd transactions: `create_config` and `register` compare the
//! key's `create_revision` with 0 (absent), `update_shards` compares each shard's
//! `mod_revision` and, when one differs, reads them all back in the same transaction's else
//! branch to name the shards that moved on. etcd refuses a transaction of more operations
//! than its `--max-txn-ops` (128 by default): one update of more than 128 shards needs etcd
//! run with a larger value. Unary requests time out after [`REQUEST_TIMEOUT`]; the watch
//! and keep-alive streams do not.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, LeaseKeepAliveStream, LeaseKeeper,
    PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::sync::{oneshot, watch};

use crate::keys::Keys;
use crate::map::{
    check_updates, ClusterConfig, ClusterMap, Controller, ControllerInfo, Member, NodeInfo,
    ShardUpdate,
};
use crate::plane::{ControlPlane, LeaseClock, MapWatch, Registration, Release, WatchEvent};
use crate::{check_name, codec, Error, Result};

/// How long one unary request may take before it fails as unavailable.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A control plane on etcd, for one cluster. Cheap to clone (the gRPC channel is shared).
#[derive(Clone)]
pub struct EtcdControlPlane {
    client: Client,
    cluster: String,
    keys: Keys,
}

fn unavailable(e: etcd_client::Error) -> Error {
    let text = e.to_string();
    if text.contains("too many operations in txn request") {
        return Error::Invalid(format!(
            "{text}: run etcd with a larger --max-txn-ops (at least the number of shards changed at once)"
        ));
    }
    Error::Unavailable(text)
}

/// Runs one request under [`REQUEST_TIMEOUT`].
async fn timed<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T> {
    match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
        Ok(result) => result.map_err(unavailable),
        Err(_) => Err(Error::Unavailable(format!(
            "{what}: no answer within {REQUEST_TIMEOUT:?}"
        ))),
    }
}

/// Parses `--etcd`: comma-separated endpoints (`http://host:port` or `host:port`).
pub fn parse_endpoints(urls: &str) -> Result<Vec<String>> {
    let endpoints: Vec<String> = urls
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if endpoints.is_empty() {
        return Err(Error::Invalid("no etcd endpoint given".into()));
    }
    Ok(endpoints)
}

impl EtcdControlPlane {
    /// Connects to etcd at `endpoints` for cluster `cluster`, and checks that it answers.
    pub async fn connect(endpoints: &[String], cluster: &str) -> Result<EtcdControlPlane> {
        check_name("cluster", cluster)?;
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(5));
        let mut client = timed("connecting", Client::connect(endpoints, Some(options)))
            .await
            .map_err(|e| Error::Unavailable(format!("connecting to {endpoints:?}: {e}")))?;
        // Connecting can be lazy; a first request proves etcd answers.
        let keys = Keys::new(cluster);
        timed(
            "reaching etcd",
            client.get(keys.config(), Some(GetOptions::new().with_count_only())),
        )
        .await
        .map_err(|e| Error::Unavailable(format!("etcd at {endpoints:?} does not answer: {e}")))?;
        Ok(EtcdControlPlane {
            client,
            cluster: cluster.to_string(),
            keys,
        })
    }

    async fn list<T: serde::de::DeserializeOwned>(&self, prefix: String) -> Result<Vec<T>> {
        let mut client = self.client.clone();
        let resp = timed(
            "listing",
            client.get(prefix, Some(GetOptions::new().with_prefix())),
        )
        .await?;
        resp.kvs()
            .iter()
            .filter_map(|kv| Some((kv.key_str().ok()?, kv.value())))
            .map(|(k, v)| codec::decode(k, v))
            .collect()
    }
}

fn ttl_secs(ttl: Duration) -> i64 {
    (ttl.as_millis().div_ceil(1000) as i64).max(1)
}

/// Grants a lease and writes `key` under it if no one holds the key. Returns the lease and
/// the revision of the write.
async fn register_once(
    client: &mut Client,
    node: &str,
    key: &str,
    value: &[u8],
    ttl: i64,
) -> Result<(i64, u64)> {
    let lease = timed("granting a lease", client.lease_grant(ttl, None))
        .await?
        .id();
    let txn = Txn::new()
        .when([Compare::create_revision(key, CompareOp::Equal, 0)])
        .and_then([TxnOp::put(
            key,
            value,
            Some(PutOptions::new().with_lease(lease)),
        )]);
    let done = timed("registering", client.txn(txn)).await;
    match done {
        Ok(resp) if resp.succeeded() => {
            Ok((lease, resp.header().map_or(0, |h| h.revision() as u64)))
        }
        other => {
            let _ = timed("revoking", client.lease_revoke(lease)).await;
            match other {
                Err(e) => Err(e),
                Ok(_) => Err(Error::AlreadyRegistered {
                    node: node.to_string(),
                }),
            }
        }
    }
}

#[derive(Debug)]
enum Stop {
    Revoke,
    Abandon,
}

struct EtcdLease {
    stop: oneshot::Sender<Stop>,
    task: tokio::task::JoinHandle<()>,
}

#[async_trait]
impl Release for EtcdLease {
    async fn revoke(self: Box<Self>) -> Result<()> {
        let _ = self.stop.send(Stop::Revoke);
        self.task
            .await
            .map_err(|e| Error::Unavailable(format!("the keep-alive task failed: {e}")))
    }

    fn revoke_soon(self: Box<Self>) {
        let _ = self.stop.send(Stop::Revoke);
    }

    fn abandon(self: Box<Self>) {
        let _ = self.stop.send(Stop::Abandon);
    }
}

/// What the keep-alive task needs to hold (and, if the lease is lost, retake) the key.
struct Keeper {
    client: Client,
    node: String,
    key: String,
    value: Vec<u8>,
    ttl: i64,
    lease: i64,
    clock: Arc<LeaseClock>,
}

/// What one keep-alive learned.
enum Renewal {
    /// etcd renewed the lease (the clock is moved on).
    Alive,
    /// etcd says the lease is gone.
    Gone,
    /// No answer (no stream, or none in time): the lease may be alive or not.
    NoAnswer,
}

/// Sends one keep-alive on `stream` and waits (up to `period`, at least 1 s) for etcd's
/// answer; a renewal moves `clock` to the time it was sent plus the TTL granted.
async fn renew(
    stream: &mut Option<(LeaseKeeper, LeaseKeepAliveStream)>,
    period: Duration,
    clock: &LeaseClock,
) -> Renewal {
    let Some((keeper, responses)) = stream.as_mut() else {
        return Renewal::NoAnswer;
    };
    let sent = Instant::now();
    let alive = tokio::time::timeout(period.max(Duration::from_secs(1)), async {
        keeper.keep_alive().await?;
        responses.message().await
    })
    .await;
    match alive {
        Ok(Ok(Some(resp))) if resp.ttl() > 0 => {
            clock.renewed(sent, Duration::from_secs(resp.ttl() as u64));
            Renewal::Alive
        }
        Ok(Ok(Some(_))) => Renewal::Gone,
        _ => Renewal::NoAnswer,
    }
}

impl Keeper {
    /// Opens a new keep-alive stream for the lease (one that broke, with a restart of etcd
    /// or a connection reset, is not reused). Opening it renews the lease once; if that
    /// fails, etcd is asked whether the lease still exists.
    async fn reopen(
        &mut self,
        stream: &mut Option<(LeaseKeeper, LeaseKeepAliveStream)>,
        period: Duration,
    ) -> Renewal {
        let wait = period.max(Duration::from_secs(1));
        let sent = Instant::now();
        match tokio::time::timeout(wait, self.client.lease_keep_alive(self.lease)).await {
            Ok(Ok(opened)) => {
                *stream = Some(opened);
                self.clock
                    .renewed(sent, Duration::from_secs(self.ttl as u64));
                Renewal::Alive
            }
            Ok(Err(_)) => {
                *stream = None;
                let asked =
                    tokio::time::timeout(wait, self.client.lease_time_to_live(self.lease, None))
                        .await;
                match asked {
                    // etcd answers -1 for a lease it no longer has.
                    Ok(Ok(resp)) if resp.ttl() <= 0 => Renewal::Gone,
                    _ => Renewal::NoAnswer,
                }
            }
            Err(_) => {
                *stream = None;
                Renewal::NoAnswer
            }
        }
    }

    /// Keeps the lease alive every quarter of its TTL until told to stop. While etcd does not
    /// answer, it keeps trying the same lease (on a new stream: one that broke with a restart
    /// of etcd is not reused). A lease etcd says is gone (unreachable for longer than the
    /// TTL) is registered again as soon as the name is free.
    async fn run(mut self, mut stop: oneshot::Receiver<Stop>) {
        let period = Duration::from_millis((self.ttl as u64 * 1000 / 4).max(100));
        let mut stream = self.client.lease_keep_alive(self.lease).await.ok();
        loop {
            tokio::select! {
                how = &mut stop => {
                    if !matches!(how, Ok(Stop::Abandon)) {
                        let _ = timed("revoking", self.client.lease_revoke(self.lease)).await;
                    }
                    return;
                }
                () = tokio::time::sleep(period) => {}
            }
            match renew(&mut stream, period, &self.clock).await {
                Renewal::Alive => continue,
                Renewal::Gone => self.clock.lost(),
                Renewal::NoAnswer => match self.reopen(&mut stream, period).await {
                    Renewal::Alive => continue,
                    Renewal::Gone => self.clock.lost(),
                    // Unreachable: keep trying; the clock runs out on its own meanwhile.
                    Renewal::NoAnswer => continue,
                },
            }
            tracing::warn!(node = %self.node, lease = self.lease, "lost the node's lease; registering again");
            let sent = Instant::now();
            match register_once(
                &mut self.client,
                &self.node,
                &self.key,
                &self.value,
                self.ttl,
            )
            .await
            {
                Ok((lease, revision)) => {
                    self.lease = lease;
                    self.clock.registered(
                        lease,
                        sent,
                        Duration::from_secs(self.ttl as u64),
                        revision,
                    );
                    stream = self.client.lease_keep_alive(lease).await.ok();
                    tracing::info!(node = %self.node, lease, "registered again");
                }
                Err(e) => {
                    stream = None;
                    tracing::warn!(node = %self.node, error = %e, "registering again failed; retrying");
                }
            }
        }
    }
}

#[async_trait]
impl ControlPlane for EtcdControlPlane {
    fn cluster(&self) -> &str {
        &self.cluster
    }

    async fn create_config(&self, config: &ClusterConfig) -> Result<u64> {
        config.validate()?;
        let key = self.keys.config();
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, codec::encode(config), None)]);
        let mut client = self.client.clone();
        let resp = timed("creating the config", client.txn(txn)).await?;
        if !resp.succeeded() {
            return Err(Error::ConfigExists {
                cluster: self.cluster.clone(),
            });
        }
        Ok(resp.header().map_or(0, |h| h.revision() as u64))
    }

    async fn config(&self) -> Result<Option<ClusterConfig>> {
        let key = self.keys.config();
        let mut client = self.client.clone();
        let resp = timed("reading the config", client.get(key.clone(), None)).await?;
        resp.kvs()
            .first()
            .map(|kv| codec::decode(&key, kv.value()))
            .transpose()
    }

    async fn put_member(&self, member: &Member) -> Result<u64> {
        check_name("node", &member.name)?;
        let mut client = self.client.clone();
        let resp = timed(
            "writing a member",
            client.put(self.keys.member(&member.name), codec::encode(member), None),
        )
        .await?;
        Ok(resp.header().map_or(0, |h| h.revision() as u64))
    }

    async fn members(&self) -> Result<Vec<Member>> {
        self.list(self.keys.members()).await
    }

    async fn register(&self, node: &NodeInfo, ttl: Duration) -> Result<Registration> {
        check_name("node", &node.name)?;
        let key = self.keys.node(&node.name);
        let value = codec::encode(node);
        let ttl = ttl_secs(ttl);
        let mut client = self.client.clone();
        let sent = Instant::now();
        let (lease, revision) = register_once(&mut client, &node.name, &key, &value, ttl).await?;
        let clock = LeaseClock::new(
            Some(sent + Duration::from_secs(ttl as u64)),
            revision,
            lease,
        );
        let (stop, stopped) = oneshot::channel();
        let keeper = Keeper {
            client,
            node: node.name.clone(),
            key,
            value,
            ttl,
            lease,
            clock: Arc::clone(&clock),
        };
        let task = tokio::spawn(keeper.run(stopped));
        Ok(Registration::new(
            node.name.clone(),
            clock,
            Box::new(EtcdLease { stop, task }),
        ))
    }

    async fn live_nodes(&self) -> Result<Vec<NodeInfo>> {
        self.list(self.keys.nodes()).await
    }

    async fn read_map(&self) -> Result<ClusterMap> {
        let mut client = self.client.clone();
        let resp = timed(
            "reading the map",
            client.get(self.keys.prefix(), Some(GetOptions::new().with_prefix())),
        )
        .await?;
        let revision = resp.header().map_or(0, |h| h.revision() as u64);
        ClusterMap::from_entries(
            &self.keys,
            revision,
            resp.kvs()
                .iter()
                .filter_map(|kv| Some((kv.key_str().ok()?, kv.value(), kv.mod_revision() as u64))),
        )
    }

    async fn campaign(&self, node: &str, lease: i64) -> Result<Controller> {
        check_name("node", node)?;
        let key = self.keys.controller();
        let info = ControllerInfo {
            name: node.to_string(),
        };
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([
                TxnOp::put(
                    key.clone(),
                    codec::encode(&info),
                    Some(PutOptions::new().with_lease(lease)),
                ),
                TxnOp::get(key.clone(), None),
            ])
            .or_else([TxnOp::get(key.clone(), None)]);
        let mut client = self.client.clone();
        let resp = timed("campaigning", client.txn(txn)).await?;
        let held = resp.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(get) => get.kvs().first().cloned(),
            _ => None,
        });
        let kv = held.ok_or_else(|| {
            Error::Unavailable("the controller key vanished during the election".into())
        })?;
        let info: ControllerInfo = codec::decode(&key, kv.value())?;
        Ok(Controller {
            name: info.name,
            term: kv.mod_revision() as u64,
        })
    }

    async fn resign(&self, term: u64) -> Result<()> {
        let key = self.keys.controller();
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key.clone(),
                CompareOp::Equal,
                term as i64,
            )])
            .and_then([TxnOp::delete(key, None)]);
        let mut client = self.client.clone();
        timed("resigning", client.txn(txn)).await?;
        Ok(())
    }

    async fn update_shards_as(&self, term: u64, updates: &[ShardUpdate]) -> Result<u64> {
        self.update(Some(term), updates).await
    }

    async fn update_shards(&self, updates: &[ShardUpdate]) -> Result<u64> {
        self.update(None, updates).await
    }

    async fn watch(&self, after: u64) -> Result<MapWatch> {
        let mut client = self.client.clone();
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(after as i64 + 1);
        let mut stream = timed("watching", client.watch(self.keys.prefix(), Some(options))).await?;
        let (tx, rx) = watch::channel(WatchEvent::Changed(after));
        let task = tokio::spawn(async move {
            loop {
                let event = match stream.message().await {
                    Ok(Some(resp)) if resp.canceled() || resp.compact_revision() > 0 => {
                        WatchEvent::Lost(format!(
                            "cancelled by etcd (compacted to {}): {}",
                            resp.compact_revision(),
                            resp.cancel_reason()
                        ))
                    }
                    Ok(Some(resp)) => {
                        let revision = resp
                            .events()
                            .iter()
                            .filter_map(|e| e.kv().map(|kv| kv.mod_revision() as u64))
                            .max();
                        match revision {
                            Some(revision) => WatchEvent::Changed(revision),
                            // The creation notice or a progress report: nothing changed.
                            None => continue,
                        }
                    }
                    Ok(None) => WatchEvent::Lost("etcd closed the watch stream".into()),
                    Err(e) => WatchEvent::Lost(e.to_string()),
                };
                let lost = matches!(event, WatchEvent::Lost(_));
                tx.send_replace(event);
                if lost {
                    return;
                }
            }
        });
        Ok(MapWatch::new(rx, after, Some(task)))
    }
}

impl EtcdControlPlane {
    /// `update_shards`, also comparing the controller's term when one is given.
    async fn update(&self, term: Option<u64>, updates: &[ShardUpdate]) -> Result<u64> {
        check_updates(updates)?;
        let mut client = self.client.clone();
        if updates.is_empty() && term.is_none() {
            return Ok(self.read_map().await?.revision);
        }
        let mut compares: Vec<Compare> = updates
            .iter()
            .map(|u| {
                Compare::mod_revision(
                    self.keys.shard(u.id),
                    CompareOp::Equal,
                    u.expected_mod_revision as i64,
                )
            })
            .collect();
        if let Some(term) = term {
            compares.push(Compare::mod_revision(
                self.keys.controller(),
                CompareOp::Equal,
                term as i64,
            ));
        }
        let puts: Vec<TxnOp> = updates
            .iter()
            .map(|u| TxnOp::put(self.keys.shard(u.id), codec::encode(&u.assignment), None))
            .collect();
        let mut reads: Vec<TxnOp> = updates
            .iter()
            .map(|u| TxnOp::get(self.keys.shard(u.id), None))
            .collect();
        reads.push(TxnOp::get(self.keys.controller(), None));
        let txn = Txn::new().when(compares).and_then(puts).or_else(reads);
        let resp = timed("updating shards", client.txn(txn)).await?;
        if resp.succeeded() {
            return Ok(resp.header().map_or(0, |h| h.revision() as u64));
        }
        let mut current: Vec<u64> = resp
            .op_responses()
            .into_iter()
            .map(|r| match r {
                TxnOpResponse::Get(get) => {
                    get.kvs().first().map_or(0, |kv| kv.mod_revision() as u64)
                }
                _ => 0,
            })
            .collect();
        let controller_now = current.pop().unwrap_or(0);
        if let Some(term) = term {
            if controller_now != term {
                return Err(Error::NotController { term });
            }
        }
        let shards = updates
            .iter()
            .zip(current)
            .filter(|(u, now)| u.expected_mod_revision != *now)
            .map(|(u, _)| u.id)
            .collect();
        Err(Error::Conflict { shards })
    }
}
