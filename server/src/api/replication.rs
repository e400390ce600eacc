//! Replication endpoints of the public API: the status report, and promotion and digests,
//! which answer loopback clients only (run `chirpctl` on the node's machine).

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{Map, Value};

use chirp_engine::Error as EngineError;
use chirp_replication::Replication;

use super::blocking;
use crate::http::{json, query_param, ApiError, ApiResult, Problem};
use crate::routes::{App, Peer};

/// The node's replication, if the request may use the admin endpoints (from loopback only).
fn admin<'a>(app: &'a App, req: &Request<Incoming>) -> ApiResult<&'a std::sync::Arc<Replication>> {
    let local = req
        .extensions()
        .get::<Peer>()
        .is_some_and(|p| p.0.ip().is_loopback());
    if !local {
        return Err(ApiError::Admin(
            "admin endpoints answer only loopback clients",
        ));
    }
    app.repl
        .as_ref()
        .ok_or(ApiError::Admin("this node runs without replication"))
}

/// Per-shard role, epoch, last and oldest retained LSN, and lag in LSNs and seconds.
#[utoipa::path(get, path = "/replication", tag = "meta",
    responses((status = 200, description = "Replication status (free-form JSON, see docs/REPLICATION.md)")))]
pub async fn status(app: &App) -> ApiResult {
    match &app.repl {
        Some(repl) => json(StatusCode::OK, &repl.status()),
        None => json(
            StatusCode::OK,
            &serde_json::json!({"role": "primary", "replication": false}),
        ),
    }
}

/// Makes this replica the primary: epochs raised, writes taken (loopback clients only).
#[utoipa::path(post, path = "/admin/promote", tag = "meta",
    responses((status = 200, description = "Now primary; the new epoch of each shard"),
        (status = 403, description = "Not from loopback, or no replication", body = Problem)))]
pub async fn promote(app: &App, req: Request<Incoming>) -> ApiResult {
    let repl = admin(app, &req)?;
    let epochs = repl
        .promote()
        .await
        .map_err(|e| ApiError::Engine(EngineError::Storage(format!("promotion failed: {e}"))))?;
    json(
        StatusCode::OK,
        &serde_json::json!({"role": "primary", "epochs": epochs}),
    )
}

/// SHA-256 of each column family but meta, per shard; the oplog from `?oplog_from=LSN`
/// (loopback clients only).
#[utoipa::path(get, path = "/admin/digest", tag = "meta",
    responses((status = 200, description = "Digests per shard and column family"),
        (status = 403, description = "Not from loopback, or no replication", body = Problem)))]
pub async fn digest(app: &App, req: Request<Incoming>) -> ApiResult {
    admin(app, &req)?;
    let from = query_param(req.uri().query(), "oplog_from")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let digests = blocking(app, move |n| {
        (0..n.shard_count())
            .map(|s| {
                let cfs: Map<String, Value> = n
                    .digest(s, from)?
                    .into_iter()
                    .map(|(cf, d)| (cf.to_string(), Value::String(d)))
                    .collect();
                Ok(Value::Object(cfs))
            })
            .collect::<Result<Vec<_>, EngineError>>()
    })
    .await?;
    json(StatusCode::OK, &serde_json::json!({"shards": digests}))
}
