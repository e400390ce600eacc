//! Any node answers any request: on a cluster node, a request that acts as a user whose shard
//! another node is the primary of is forwarded, once, to that node's public API, and its
//! answer passed back.
//!
//! The user is known before the request runs: a bearer token starts with its user's id, and
//! a log-in names a handle (resolved through the handle's shard). A forwarded request carries
//! [`FORWARDED`], so the owner answers it itself whatever it thinks of the map (a 421 if it no
//! longer holds the shard); a request is never forwarded twice. Everything else (reading a
//! profile, a tweet, a timeline, a search) runs where it arrives: the engine's shard steps
//! reach the shards it needs.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, HOST};
use hyper::{Request, Response};
use tokio::net::TcpStream;

use chirp_engine::{Error as EngineError, ShardId};

use crate::http::{ApiError, ApiResult, Body};

/// The header a forwarded request carries (its value: the forwarding node's name).
pub const FORWARDED: &str = "chirp-forwarded";
/// The response header naming the node that answered.
pub const NODE_HEADER: &str = "x-chirp-node";
/// How long a forwarded request may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// Where each shard's primary serves the public API (`host:port`), as the cluster map says.
#[derive(Debug, Default)]
pub struct Owners {
    api: RwLock<HashMap<ShardId, String>>,
}

impl Owners {
    /// Replaces every shard's owner address.
    pub fn replace(&self, api: HashMap<ShardId, String>) {
        if let Ok(mut map) = self.api.write() {
            *map = api;
        }
    }

    /// The public API address of a shard's primary, if known.
    pub fn api_of(&self, shard: ShardId) -> Option<String> {
        self.api.read().ok()?.get(&shard).cloned()
    }
}

/// The public address of the node that must answer `req`, when that is not this node: the
/// request acts as a user (its bearer token names one) whose shard another node is the
/// primary of, or reads an image whose shard another node is the primary of. None on a standalone node, for a request already forwarded, and for one this
/// node answers.
pub fn owner_of(app: &crate::routes::App, req: &Request<hyper::body::Incoming>) -> Option<String> {
    let owners = app.owners.as_ref()?;
    if req.headers().contains_key(FORWARDED) {
        return None;
    }
    let placement = app.node.placement();
    // An image's file is on the node that took the upload: its shard's primary.
    let media = req
        .uri()
        .path()
        .strip_prefix("/media/")
        .and_then(|id| id.parse::<u64>().ok())
        .and_then(|id| placement.of_id(id));
    let shard = match media {
        Some(shard) => shard,
        None => {
            let token = crate::http::bearer(req.headers())?;
            placement.of_user(chirp_engine::sessions::token_user(token)?)
        }
    };
    if app.node.is_primary_of(shard) {
        return None;
    }
    owners.api_of(shard)
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
        Ok(Err(why)) => Err(unavailable(api, &why)),
        Err(_) => Err(unavailable(api, "no answer in time")),
    }
}

fn unavailable(api: &str, why: &str) -> ApiError {
    EngineError::Unavailable(format!("the node at {api} that owns this request: {why}")).into()
}

async fn send<B>(api: &str, from_node: &str, req: Request<B>) -> Result<Response<Body>, String>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(api).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
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
    parts.uri = path.parse().map_err(|e| format!("{e}"))?;
    let host = HeaderValue::from_str(api).map_err(|e| e.to_string())?;
    parts.headers.insert(HOST, host);
    let from = HeaderValue::from_str(from_node).unwrap_or(HeaderValue::from_static("?"));
    parts
        .headers
        .insert(HeaderName::from_static(FORWARDED), from);
    let resp = sender
        .send_request(Request::from_parts(parts, body))
        .await
        .map_err(|e| e.to_string())?;
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Response::from_parts(parts, Full::new(bytes)))
}
