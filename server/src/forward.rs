//! Any node answers any request: on a cluster node, a request that acts as a user whose shard
//! another node is the primary of is forwarded to that node's public API, and its answer
//! passed back.
//!
//! The user is known before the request runs: a bearer token starts with its user's id, and
//! a log-in names a handle (resolved through the handle's shard). A forwarded request carries
//! [`FORWARDED`], so the owner answers it itself whatever it thinks of the map; a request is
//! never forwarded twice. An owner that is not (or no longer) the primary answers 421: the
//! forwarding node waits for its map to change and sends the request again (its body is kept
//! for that), to whichever node the map then names, for up to [`RETRY_FOR`]. A node whose
//! copy of the shard is fenced for a handover holds requests for that shard until the
//! handover ends, then runs them or forwards them to the new primary. Everything else
//! (reading a profile, a tweet, a timeline, a search) runs where it arrives: the engine's
//! shard steps reach the shards it needs.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, HOST};
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpStream;
use tokio::sync::watch;

use chirp_engine::{Error as EngineError, ShardId};

use crate::http::{ApiError, ApiResult, Body};
use crate::routes::App;

/// The header a forwarded request carries (its value: the forwarding node's name).
pub const FORWARDED: &str = "chirp-forwarded";
/// The response header naming the node that answered.
pub const NODE_HEADER: &str = "x-chirp-node";
/// How long a forwarded request may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a request acting as a user is held and re-sent while its shard changes hands.
pub const RETRY_FOR: Duration = Duration::from_secs(12);

/// Where each shard's primary serves the public API (`host:port`), as the cluster map says.
#[derive(Debug)]
pub struct Owners {
    api: RwLock<HashMap<ShardId, String>>,
    /// Bumped by every [`Owners::replace`].
    version: watch::Sender<u64>,
}

impl Default for Owners {
    fn default() -> Self {
        Owners {
            api: RwLock::default(),
            version: watch::Sender::new(0),
        }
    }
}

impl Owners {
    /// Replaces every shard's owner address.
    pub fn replace(&self, api: HashMap<ShardId, String>) {
        if let Ok(mut map) = self.api.write() {
            *map = api;
        }
        self.version.send_modify(|v| *v += 1);
    }

    /// Waits until the owners change after version `seen`, or `max`; the version then.
    async fn changed_after(&self, seen: u64, max: Duration) -> u64 {
        let mut rx = self.version.subscribe();
        let _ = tokio::time::timeout(max, rx.wait_for(|&v| v > seen)).await;
        let now = *rx.borrow();
        now
    }

    /// The public API address of a shard's primary, if known.
    pub fn api_of(&self, shard: ShardId) -> Option<String> {
        self.api.read().ok()?.get(&shard).cloned()
    }
}

/// The shard whose primary must answer `req`, on a cluster node: the request acts as a user
/// (its bearer token names one), reads an image (its id names the shard), or signs up on a
/// node that leads no shard (see [`sign_up_shard`]). None on a standalone node and for every
/// other request.
pub fn owner_shard(app: &App, req: &Request<Incoming>) -> Option<ShardId> {
    app.owners.as_ref()?;
    let placement = app.node.placement();
    // An image is served by its shard's primary, which holds every file its rows name (a
    // replica may not have applied the row yet).
    let media = req
        .uri()
        .path()
        .strip_prefix("/media/")
        .and_then(|id| id.parse::<u64>().ok())
        .and_then(|id| placement.of_id(id));
    if media.is_some() {
        return media;
    }
    if req.method() == hyper::Method::POST
        && matches!(req.uri().path(), "/users" | "/api/v1/accounts")
    {
        return sign_up_shard(app);
    }
    let token = crate::http::bearer(req.headers())?;
    Some(placement.of_user(chirp_engine::sessions::token_user(token)?))
}

/// Where a sign-up runs: here when this node is the primary of some shard (a new user's
/// rows go on one of those, in turn); else at the primary of each shard in turn, so a node
/// that leads nothing (just added, or drained) still signs people up.
fn sign_up_shard(app: &App) -> Option<ShardId> {
    static TURN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let count = app.node.shard_count();
    if (0..count).any(|s| app.node.is_primary_of(s)) {
        return None;
    }
    Some(TURN.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % count.max(1))
}

/// Whether a request was forwarded here by another node (so it runs here, whatever the map).
pub fn forwarded<B>(req: &Request<B>) -> bool {
    req.headers().contains_key(FORWARDED)
}

/// Holds a request for `shard` while this node's copy is fenced for a handover (at most
/// [`RETRY_FOR`]): once the handover ends this node is the primary again, or the map names
/// the new one.
pub async fn settle(app: &App, shard: ShardId) {
    let deadline = tokio::time::Instant::now() + RETRY_FOR;
    while app.node.is_fenced(shard) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs `req` at the primary of `shard`, another node as far as this node's map says: sent
/// with its body read here, and sent again (to whichever node the map then names, this one
/// included) while the answer is a 421, as long as [`RETRY_FOR`] allows.
pub async fn proxy(app: &App, shard: ShardId, req: Request<Incoming>) -> ApiResult {
    let (parts, body) = req.into_parts();
    let limit = app.node.config().max_media_bytes + crate::media::MULTIPART_OVERHEAD;
    let bytes = crate::http::read_body(&parts.headers, body, limit).await?;
    to_primary(app, shard, &parts.method, &parts.uri, &parts.headers, bytes).await
}

/// Sends a request, its body whole, to the node the map names the primary of `shard`, and
/// again while the answer is a 421 (see [`proxy`]).
pub async fn to_primary(
    app: &App,
    shard: ShardId,
    method: &hyper::Method,
    uri: &hyper::Uri,
    headers: &hyper::HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let Some(owners) = app.owners.as_ref() else {
        return Err(EngineError::NotHere(shard).into());
    };
    let deadline = tokio::time::Instant::now() + RETRY_FOR;
    let mut seen = *owners.version.borrow();
    loop {
        let api = owners.api_of(shard).ok_or_else(|| {
            EngineError::Unavailable(format!("no primary of shard {shard} is known"))
        })?;
        let mut again = Request::builder()
            .method(method.clone())
            .uri(uri.clone())
            .body(Full::new(bytes.clone()))
            .map_err(|e| EngineError::Storage(format!("rebuilding a forwarded request: {e}")))?;
        *again.headers_mut() = headers.clone();
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(FORWARD_TIMEOUT, send(&api, &app.node_name, again)).await {
            Ok(Ok(resp)) if resp.status() == StatusCode::MISDIRECTED_REQUEST && !left.is_zero() => {
                tracing::debug!(shard, owner = %api, "the owner answered 421; waiting for the map");
            }
            Ok(Ok(resp)) => return Ok(resp),
            // Never delivered (the owner is down): safe to send again once the map names
            // another primary, as a failover will.
            Ok(Err(Failed::NotSent(why))) if !left.is_zero() => {
                tracing::debug!(shard, owner = %api, reason = %why, "the owner cannot be reached; waiting for the map");
            }
            Ok(Err(Failed::NotSent(why) | Failed::Sent(why))) => {
                return Err(unavailable(&api, &why))
            }
            // Perhaps delivered: never sent twice.
            Err(_) => return Err(unavailable(&api, "no answer in time")),
        }
        // The map moves on when the handover (or failover) lands; until then, poll gently.
        seen = owners
            .changed_after(seen, left.min(Duration::from_millis(250)))
            .await;
    }
}

/// Sends `req` (its body given whole or as it streams in) to the node at `api` and returns
/// that node's answer. A node that cannot be reached is a 503: the client may retry.
pub async fn forward<B>(api: &str, from_node: &str, req: Request<B>) -> ApiResult
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match tokio::time::timeout(FORWARD_TIMEOUT, send(api, from_node, req)).await {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(Failed::NotSent(why) | Failed::Sent(why))) => Err(unavailable(api, &why)),
        Err(_) => Err(unavailable(api, "no answer in time")),
    }
}

/// The address connections to other nodes leave from (see [`leave_from`]).
static SOURCE: std::sync::OnceLock<std::net::IpAddr> = std::sync::OnceLock::new();

/// Makes connections to other nodes (forwards, the controller's probes) leave from `ip`,
/// the address the public API listens on, when that is one specific address: traffic
/// between nodes then comes from each node's own address, as it does for replication
/// (whose endpoint is bound to its address). Without it the system picks the source.
pub fn leave_from(ip: std::net::IpAddr) {
    if !ip.is_unspecified() {
        let _ = SOURCE.set(ip);
    }
}

/// A TCP connection to `api` (`host:port`), from [`leave_from`]'s address if one is set.
async fn connect(api: &str) -> std::io::Result<TcpStream> {
    let Some(&ip) = SOURCE.get() else {
        return TcpStream::connect(api).await;
    };
    let mut last = None;
    for to in tokio::net::lookup_host(api).await? {
        if to.is_ipv4() != ip.is_ipv4() {
            continue;
        }
        let socket = if ip.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.bind(std::net::SocketAddr::new(ip, 0))?;
        match socket.connect(to).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("no address of {api} reachable from {ip}"),
        )
    }))
}

/// Why a forward failed: before the request left (no connection), or after (its fate is
/// unknown, so it is never sent again).
enum Failed {
    NotSent(String),
    Sent(String),
}

fn unavailable(api: &str, why: &str) -> ApiError {
    EngineError::Unavailable(format!("the node at {api} that owns this request: {why}")).into()
}

async fn send<B>(api: &str, from_node: &str, req: Request<B>) -> Result<Response<Body>, Failed>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let not_sent = |e: &dyn std::fmt::Display| Failed::NotSent(e.to_string());
    let stream = connect(api).await.map_err(|e| not_sent(&e))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| not_sent(&e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "forwarding connection ended");
        }
    });
    let (mut parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    // A request that cannot be built fails at once (sending it again would not help).
    let fail = |e: &dyn std::fmt::Display| Failed::Sent(e.to_string());
    parts.uri = path.parse().map_err(|e| fail(&e))?;
    let host = HeaderValue::from_str(api).map_err(|e| fail(&e))?;
    parts.headers.insert(HOST, host);
    let from = HeaderValue::from_str(from_node).unwrap_or(HeaderValue::from_static("?"));
    parts
        .headers
        .insert(HeaderName::from_static(FORWARDED), from);
    let resp = sender
        .send_request(Request::from_parts(parts, body))
        .await
        .map_err(|e| fail(&e))?;
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.map_err(|e| fail(&e))?.to_bytes();
    Ok(Response::from_parts(parts, Full::new(bytes)))
}

/// `GET path` at the node whose public API is `api`, within `timeout`: the status and the
/// JSON body (Null if it is not JSON). None if the node cannot be reached in time.
pub async fn get_json(
    api: &str,
    path: &str,
    timeout: Duration,
) -> Option<(u16, serde_json::Value)> {
    let req = Request::get(path).body(Full::new(Bytes::new())).ok()?;
    let resp = tokio::time::timeout(timeout, send(api, "controller", req))
        .await
        .ok()?
        .ok()?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some((
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    ))
}
