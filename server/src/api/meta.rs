//! Endpoints about the service itself: health and the API description.

use hyper::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use hyper::body::Incoming;
use hyper::Request;

use chirp_engine::Error as EngineError;

use crate::http::{bytes_response, json, ApiError, ApiResult, Problem};
use crate::routes::App;

/// Liveness, with the hot-tweet cache's counters.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    status: &'static str,
    /// The hot-tweet cache.
    tweet_cache: TweetCacheView,
    /// On a cluster node: `held` while its registration is known alive (it serves the shards
    /// it leads), `lapsed` once it may have run out (it answers 503 for them, and the
    /// controller fails them over). Absent on a standalone node.
    #[serde(skip_serializing_if = "Option::is_none")]
    lease: Option<&'static str>,
}

/// Counters of the hot-tweet cache.
#[derive(Serialize, ToSchema)]
pub struct TweetCacheView {
    /// Lookups answered from memory.
    hits: u64,
    /// Lookups that went to storage.
    misses: u64,
    /// Entries pushed out to make room.
    evictions: u64,
    /// Bytes charged for the entries held.
    bytes: u64,
    /// Entries held.
    entries: u64,
    /// The byte budget.
    capacity_bytes: u64,
}

/// Whether the node is up.
#[utoipa::path(get, path = "/health", tag = "meta",
    responses((status = 200, description = "The node is serving", body = Health)))]
pub async fn health(app: &App) -> ApiResult {
    let c = app.node.cache_stats();
    let tweet_cache = TweetCacheView {
        hits: c.hits,
        misses: c.misses,
        evictions: c.evictions,
        bytes: c.bytes,
        entries: c.entries,
        capacity_bytes: c.capacity_bytes,
    };
    json(
        StatusCode::OK,
        &Health {
            status: "ok",
            tweet_cache,
            lease: app.owners.as_ref().map(|_| {
                if app.node.shared().lease_held() {
                    "held"
                } else {
                    "lapsed"
                }
            }),
        },
    )
}

/// This document: the OpenAPI 3.1 description of the public API.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
pub async fn openapi() -> ApiResult {
    Ok(bytes_response(
        StatusCode::OK,
        "application/json",
        crate::openapi::document().to_owned(),
    ))
}

/// The web client's page.
#[utoipa::path(get, path = "/", tag = "web",
    responses((status = 200, description = "The single-page web client", content_type = "text/html")))]
pub async fn web_index(req: &Request<Incoming>) -> ApiResult {
    crate::web::index(req.headers()).ok_or(ApiError::Engine(EngineError::NotFound("page")))
}

/// The web client's page, headers only.
#[utoipa::path(head, path = "/", tag = "web",
    responses((status = 200, description = "The page's headers")))]
pub async fn web_index_head(req: &Request<Incoming>) -> ApiResult {
    web_index(req).await
}

/// One of the web client's assets (scripts, styles), cacheable.
#[utoipa::path(get, path = "/app/{file}", tag = "web",
    params(("file" = String, Path, description = "Asset file name")),
    responses(
        (status = 200, description = "The asset, typed by its extension"),
        (status = 304, description = "The client's copy is current"),
        (status = 404, description = "No such asset", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn web_asset(req: &Request<Incoming>, name: &str) -> ApiResult {
    crate::web::asset(name, req.headers()).ok_or(ApiError::Engine(EngineError::NotFound("asset")))
}

/// An asset's headers.
#[utoipa::path(head, path = "/app/{file}", tag = "web",
    params(("file" = String, Path, description = "Asset file name")),
    responses(
        (status = 200, description = "The asset's headers"),
        (status = 404, description = "No such asset"),
    ))]
pub async fn web_asset_head(req: &Request<Incoming>, name: &str) -> ApiResult {
    web_asset(req, name).await
}
