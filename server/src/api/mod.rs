//! The public API's handlers, one function per endpoint, each annotated with its OpenAPI
//! description (so the document is generated from the code that serves it). They parse the
//! request, call the domain layer (reads inline, writes on a blocking thread) and render the
//! result.

pub mod accounts;
pub mod meta;
pub mod replication;
pub mod search;
pub mod sessions;
pub mod social;
pub mod tweets;

use hyper::body::Incoming;
use hyper::Request;
use serde::Deserialize;
use utoipa::IntoParams;

use chirp_engine::{Authenticated, Error as EngineError, Node, PageRequest, TokenState};

use crate::http::{self, bearer, parse_json, query_param, ApiError, ApiResult};
use crate::routes::App;

/// Pagination query parameters, shared by every list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageParams {
    /// Items per page, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Runs a domain call on the blocking pool (RocksDB reads and fsyncs block), inside the
/// request's span so engine logs carry the request id. In sync acknowledgement mode, a call
/// that wrote returns only once a replica has what it wrote.
pub(crate) async fn blocking<T, F>(app: &App, f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce(&Node) -> Result<T, EngineError> + Send + 'static,
{
    let node = std::sync::Arc::clone(&app.node);
    let span = tracing::Span::current();
    let stale = stale_allowed();
    let cluster = app.owners.is_some();
    let (result, writes, epochs) = tokio::task::spawn_blocking(move || {
        let (result, writes) =
            span.in_scope(|| chirp_engine::track_writes(|| with_stale(stale, || f(&node))));
        // The epoch each write was made at (the primary's, when it committed).
        let epochs: Vec<(usize, u64)> = if cluster {
            writes
                .iter()
                .filter_map(|&(s, lsn)| Some((s, node.entry_epoch(s, lsn).ok()??)))
                .collect()
        } else {
            Vec::new()
        };
        (result, writes, epochs)
    })
    .await
    .map_err(|e| EngineError::Storage(format!("worker task failed: {e}")))?;
    let value = result?;
    if let (Some(repl), false) = (&app.repl, writes.is_empty()) {
        repl.wait_replicated(&writes)
            .await
            .map_err(|e| ApiError::NotReplicated(e.to_string()))?;
    }
    let _ = ACKED.try_with(|acked| acked.borrow_mut().extend(epochs));
    Ok(value)
}

tokio::task_local! {
    /// The (shard, epoch) of each write the request being served made and acknowledged
    /// here (a cluster node answers them in [`ACKED_HEADER`]).
    pub(crate) static ACKED: std::cell::RefCell<Vec<(usize, u64)>>;
}

/// On a cluster node's answer to a request that wrote: the `shard@epoch` of each write it
/// acknowledged, comma-separated, beside `X-Chirp-Node` (the node that acknowledged them).
/// Within one (shard, epoch) only one node ever acknowledges: what a fault checker verifies.
pub const ACKED_HEADER: &str = "x-chirp-acked";

/// Runs a read-only domain call right here on the runtime thread, with RocksDB restricted to
/// its block cache (and memtables). Reads served from the caches take microseconds, less than
/// the two thread switches of a hand-off to the blocking pool (which profiles showed as half
/// the time of a feed request). A read that misses the cache needs the disk: it is redone on
/// the blocking pool, so a slow disk never stalls the runtime threads.
pub(crate) async fn read<T, F>(app: &App, f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: Fn(&Node) -> Result<T, EngineError> + Send + 'static,
{
    let stale = stale_allowed();
    match chirp_engine::cache_only(|| with_stale(stale, || f(&app.node))) {
        Err(EngineError::WouldBlock) => {
            let node = std::sync::Arc::clone(&app.node);
            let span = tracing::Span::current();
            tokio::task::spawn_blocking(move || span.in_scope(|| with_stale(stale, || f(&node))))
                .await
                .map_err(|e| EngineError::Storage(format!("worker task failed: {e}")))?
                .map_err(ApiError::from)
        }
        other => other.map_err(ApiError::from),
    }
}

tokio::task_local! {
    /// Whether the request being served asked for `Chirp-Read: stale`.
    pub(crate) static STALE_READ: bool;
}

/// Whether the request being served accepts reads from this node's replica copies.
fn stale_allowed() -> bool {
    STALE_READ.try_with(|s| *s).unwrap_or(false)
}

fn with_stale<T>(stale: bool, f: impl FnOnce() -> T) -> T {
    if stale {
        chirp_engine::stale_reads(f)
    } else {
        f()
    }
}

fn page_request(req: &Request<Incoming>) -> ApiResult<PageRequest> {
    let query = req.uri().query();
    let limit = query_param(query, "limit");
    let cursor = query_param(query, "cursor");
    Ok(PageRequest::parse(limit.as_deref(), cursor.as_deref())?)
}

/// A session write a request calls for but does not wait for.
type Housekeeping = fn(&Node, &str) -> Result<(), EngineError>;

/// The user a request's bearer token authenticates.
pub(crate) async fn authenticate(app: &App, req: &Request<Incoming>) -> ApiResult<u64> {
    Ok(authenticate_session(app, req).await?.user_id)
}

/// The session a request's bearer token authenticates. The check is a read; the writes it
/// may call for (extending the session, removing an expired one) go to the blocking pool
/// without the request waiting for them: losing one only shortens a session, or leaves an
/// expired row to be removed at the next attempt or log-in.
pub(crate) async fn authenticate_session(
    app: &App,
    req: &Request<Incoming>,
) -> ApiResult<Authenticated> {
    let Some(token) = bearer(req.headers()).map(str::to_owned) else {
        return Err(EngineError::Unauthenticated(
            "this endpoint needs an Authorization: Bearer token",
        )
        .into());
    };
    let checked = token.clone();
    let state = read(app, move |node| node.check_token(&checked)).await?;
    let (auth, housekeeping): (_, Housekeeping) = match state {
        TokenState::Valid(auth) if auth.refresh_due => (Ok(auth), |n, t| n.touch_session(t)),
        TokenState::Valid(auth) => return Ok(auth),
        TokenState::Expired => (
            Err(EngineError::Unauthenticated(
                chirp_engine::sessions::EXPIRED,
            )),
            |n, t| n.log_out(t),
        ),
    };
    let node = std::sync::Arc::clone(&app.node);
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        if let Err(e) = housekeeping(&node, &token) {
            // A replica takes no writes: its sessions are kept by the primary.
            tracing::debug!(error = %e, "session bookkeeping skipped");
        }
    });
    Ok(auth?)
}

/// [`authenticate`] for a request that writes: the user's write rate limit applies.
pub(crate) async fn authenticate_writer(app: &App, req: &Request<Incoming>) -> ApiResult<u64> {
    let me = authenticate(app, req).await?;
    app.limits.write(me).map_err(ApiError::RateLimited)?;
    Ok(me)
}

async fn body<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> ApiResult<T> {
    let (parts, body) = req.into_parts();
    let bytes = http::read_body(&parts.headers, body, http::MAX_JSON_BODY).await?;
    parse_json(&bytes)
}

async fn resolve(app: &App, reference: &str) -> ApiResult<u64> {
    let reference = reference.to_owned();
    read(app, move |node| node.resolve_user(&reference)).await
}

/// The path parameter at `i` (the router captured every `{…}` of the pattern).
pub(crate) fn param(params: &[String], i: usize) -> &str {
    params.get(i).map(String::as_str).unwrap_or_default()
}
