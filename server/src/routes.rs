//! The public API's route table and the request pipeline: request id, span, routing, metrics.
//!
//! [`ROUTES`] is the one list of what the router serves: matching, the `Allow` header of 405
//! responses, the `route` label of the metrics and the OpenAPI test all read it.

use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response};
use tracing::Instrument;

use chirp_engine::Node;

use crate::api;
use crate::http::{ApiError, ApiResult, Body};
use crate::metrics::Metrics;

/// What every request handler shares.
pub struct App {
    /// The storage node.
    pub node: Arc<Node>,
    /// Request counters and latencies, read by the admin listener's `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Replication, when the node runs with it.
    pub repl: Option<Arc<chirp_replication::Replication>>,
    /// Rate limits on log-ins, sign-ups and writes.
    pub limits: crate::limits::Limits,
    /// The cluster this node joined (`--etcd`): control plane and latest map.
    pub cluster: Option<Arc<crate::cluster::Membership>>,
    /// On a cluster node, where each shard's primary serves: requests acting as a user held
    /// elsewhere are forwarded there.
    pub owners: Option<Arc<crate::forward::Owners>>,
    /// This node's name (`X-Chirp-Node` on a cluster node's responses).
    pub node_name: String,
    /// Authorization codes of the Mastodon client API's OAuth flow, waiting for their
    /// exchange.
    pub oauth_codes: crate::mastodon::oauth::Codes,
}

/// The TCP peer a request came from (the client address rate limits key on).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

/// One endpoint: its method and its path pattern, where `{name}` matches one path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// HTTP method, upper case.
    pub method: &'static str,
    /// Path pattern as the OpenAPI document writes it.
    pub pattern: &'static str,
}

/// A route of a table.
pub(crate) const fn r(method: &'static str, pattern: &'static str) -> Route {
    Route { method, pattern }
}

/// Every route of the public API, in matching order (a literal segment wins over a
/// parameter because the literal route comes first: `/tweets/{id}` before `/{userId}/tweets`).
pub const ROUTES: &[Route] = &[
    // The web client. User references are numeric or start with '@', so `/app/...` never
    // names a user and these routes cannot shadow the API. HEAD is answered like GET.
    r("GET", "/"),
    r("HEAD", "/"),
    r("GET", "/app/{file}"),
    r("HEAD", "/app/{file}"),
    r("GET", "/health"),
    r("GET", "/openapi.json"),
    r("GET", "/replication"),
    r("POST", "/users"),
    r("POST", "/sessions"),
    r("DELETE", "/sessions"),
    r("GET", "/sessions"),
    r("DELETE", "/sessions/{id}"),
    r("POST", "/tweet"),
    r("POST", "/media"),
    r("GET", "/media/{id}"),
    r("HEAD", "/media/{id}"),
    r("GET", "/feed"),
    r("GET", "/tweets/{id}"),
    r("DELETE", "/tweets/{id}"),
    r("GET", "/search/tags/{hashtag}"),
    r("GET", "/search/tags"),
    r("GET", "/{userId}/profile"),
    r("PATCH", "/{userId}/profile"),
    r("POST", "/{userId}/follow/{id}"),
    r("DELETE", "/{userId}/follow/{id}"),
    r("GET", "/{userId}/followers"),
    r("GET", "/{userId}/following"),
    r("GET", "/{userId}/tweets"),
];

/// The `route` label of requests no route matched, so stray paths cannot grow the metrics.
pub const UNMATCHED: &str = "unmatched";

/// The request header carrying the request id, in both directions.
pub const REQUEST_ID: &str = "x-request-id";

fn segments(path: &str) -> Vec<String> {
    path.trim_start_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

/// The values of a pattern's parameters if `segs` matches it.
fn captures(pattern: &str, segs: &[String]) -> Option<Vec<String>> {
    let parts: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
    if parts.len() != segs.len() {
        return None;
    }
    let mut params = Vec::new();
    for (part, seg) in parts.iter().zip(segs) {
        if part.starts_with('{') && part.ends_with('}') {
            params.push(seg.clone());
        } else if part != seg {
            return None;
        }
    }
    Some(params)
}

/// How a request's method and path resolve against [`ROUTES`].
#[derive(Debug, PartialEq)]
pub enum Matched {
    /// A route, with its path parameters in pattern order.
    Route(&'static Route, Vec<String>),
    /// The path exists, but not with this method; the methods it has.
    Method(String),
    /// No route has this path.
    None,
}

/// Resolves a method and path. A Mastodon client API path may end in a slash, as Rails
/// routes allow (Mastodon.py asks for `/api/v2/instance/`).
pub fn find(method: &str, path: &str) -> Matched {
    let path = match path.strip_suffix('/') {
        Some(bare) if !bare.is_empty() && crate::mastodon::owns(path) => bare,
        _ => path,
    };
    let segs = segments(path);
    let mut allowed: Vec<&str> = Vec::new();
    // The Mastodon client API's paths all start with a segment no native route has.
    for route in crate::mastodon::ROUTES.iter().chain(ROUTES) {
        if let Some(params) = captures(route.pattern, &segs) {
            if route.method == method {
                return Matched::Route(route, params);
            }
            if !allowed.contains(&route.method) {
                allowed.push(route.method);
            }
        }
    }
    if allowed.is_empty() {
        Matched::None
    } else {
        Matched::Method(allowed.join(", "))
    }
}

/// An incoming request id if it is safe to log and echo, else a fresh one.
pub(crate) fn request_id(req: &Request<Incoming>) -> String {
    req.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()))
}

/// Serves one request; never fails (errors become problem responses).
pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let id = request_id(&req);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let matched = find(method.as_str(), &path);
    let label = match &matched {
        Matched::Route(route, _) => route.pattern,
        _ => UNMATCHED,
    };
    let span = tracing::info_span!("request", request_id = %id, %method, route = label);
    let owner = crate::forward::owner_shard(&app, &req);
    let served = async {
        let resp = route(&app, matched, owner, req).await.unwrap_or_else(|e| {
            if crate::mastodon::owns(&path) {
                crate::mastodon::error_response(e)
            } else {
                e.into_response()
            }
        });
        tracing::debug!(
            %path,
            status = resp.status().as_u16(),
            micros = started.elapsed().as_micros() as u64,
            "request"
        );
        (resp, crate::api::ACKED.with(|a| a.take()))
    };
    let (mut resp, acked) = crate::api::ACKED
        .scope(std::cell::RefCell::new(Vec::new()), served.instrument(span))
        .await;
    app.metrics.observe_request(
        label,
        method.as_str(),
        resp.status().as_u16(),
        started.elapsed(),
    );
    if let Ok(value) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, value);
    }
    // A forwarded answer keeps the owner's name (and what it acknowledged).
    if app.owners.is_some() && !resp.headers().contains_key(crate::forward::NODE_HEADER) {
        if let Ok(value) = HeaderValue::from_str(&app.node_name) {
            resp.headers_mut()
                .insert(crate::forward::NODE_HEADER, value);
        }
        if !acked.is_empty() && resp.status().is_success() {
            let list: Vec<String> = acked.iter().map(|(s, e)| format!("{s}@{e}")).collect();
            if let Ok(value) = HeaderValue::from_str(&list.join(",")) {
                resp.headers_mut().insert(crate::api::ACKED_HEADER, value);
            }
        }
    }
    resp
}

/// Runs a matched request where it belongs: a request acting as a user at the primary of
/// the user's shard (here, while this node leads it and holds its lease; else forwarded),
/// any other here.
async fn route(
    app: &App,
    matched: Matched,
    owner: Option<chirp_engine::ShardId>,
    req: Request<Incoming>,
) -> ApiResult {
    match (matched, owner) {
        (Matched::Route(route, params), Some(shard)) => {
            crate::forward::settle(app, shard).await;
            if app.node.is_primary_of(shard) || crate::forward::forwarded(&req) {
                // Served from this node's copies: only while its lease holds.
                app.node.shared().check_lease()?;
                dispatch(app, route, req, &params).await
            } else {
                crate::forward::proxy(app, shard, req).await
            }
        }
        (Matched::Route(route, params), None) => dispatch(app, route, req, &params).await,
        (Matched::Method(allow), _) => Err(ApiError::Method(allow)),
        (Matched::None, _) => Err(ApiError::NoRoute),
    }
}

/// The request header asking for reads from this node's copies even where they may lag the
/// primary (`Chirp-Read: stale`; `primary`, the default, reads at the primary).
pub const READ_HEADER: &str = "chirp-read";

/// Calls the handler of a route, with the read consistency the request asked for.
async fn dispatch(
    app: &App,
    route: &Route,
    req: Request<Incoming>,
    params: &[String],
) -> ApiResult {
    let stale = match req.headers().get(READ_HEADER).map(|v| v.as_bytes()) {
        None => false,
        Some(v) if v.eq_ignore_ascii_case(b"stale") => true,
        Some(v) if v.eq_ignore_ascii_case(b"primary") => false,
        Some(_) => {
            return Err(chirp_engine::Error::invalid(
                "Chirp-Read",
                "must be `stale` (this node's copy, which may lag) or `primary` (the default)",
            )
            .into())
        }
    };
    crate::api::STALE_READ
        .scope(stale, dispatch_route(app, route, req, params))
        .await
}

async fn dispatch_route(
    app: &App,
    route: &Route,
    req: Request<Incoming>,
    params: &[String],
) -> ApiResult {
    use api::{accounts, meta, replication, search, sessions, social, tweets};
    if crate::mastodon::owns(route.pattern) {
        return crate::mastodon::dispatch(app, route, req, params).await;
    }
    match (route.method, route.pattern) {
        ("GET", "/") => meta::web_index(&req).await,
        ("HEAD", "/") => meta::web_index_head(&req).await,
        ("GET", "/app/{file}") => meta::web_asset(&req, api::param(params, 0)).await,
        ("HEAD", "/app/{file}") => meta::web_asset_head(&req, api::param(params, 0)).await,
        ("GET", "/health") => meta::health(app).await,
        ("GET", "/openapi.json") => meta::openapi().await,
        ("GET", "/replication") => replication::status(app).await,
        ("POST", "/users") => accounts::sign_up(app, req).await,
        ("POST", "/sessions") => accounts::log_in(app, req).await,
        ("DELETE", "/sessions") => accounts::log_out(app, req).await,
        ("GET", "/sessions") => sessions::list(app, req).await,
        ("DELETE", "/sessions/{id}") => sessions::end(app, req, params).await,
        ("POST", "/tweet") => tweets::post_tweet(app, req).await,
        ("POST", "/media") => crate::media::upload(app, req).await,
        ("GET", "/media/{id}") => crate::media::serve(app, &req, api::param(params, 0)).await,
        ("HEAD", "/media/{id}") => crate::media::serve_head(app, &req, api::param(params, 0)).await,
        ("GET", "/feed") => tweets::feed(app, req).await,
        ("GET", "/tweets/{id}") => tweets::get_tweet(app, params).await,
        ("DELETE", "/tweets/{id}") => tweets::delete_tweet(app, req, params).await,
        ("GET", "/search/tags/{hashtag}") => search::by_tag(app, req, params).await,
        ("GET", "/search/tags") => search::by_tags(app, req).await,
        ("GET", "/{userId}/profile") => accounts::get_profile(app, params).await,
        ("PATCH", "/{userId}/profile") => accounts::patch_profile(app, req, params).await,
        ("POST", "/{userId}/follow/{id}") => social::follow(app, req, params).await,
        ("DELETE", "/{userId}/follow/{id}") => social::unfollow(app, req, params).await,
        ("GET", "/{userId}/followers") => social::followers(app, req, params).await,
        ("GET", "/{userId}/following") => social::following(app, req, params).await,
        ("GET", "/{userId}/tweets") => tweets::user_tweets(app, req, params).await,
        // A table entry without a handler; the route test catches it before release.
        _ => Err(ApiError::NoRoute),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A concrete path for a pattern, with each parameter replaced by `value`.
    fn sample(pattern: &str, value: &str) -> String {
        pattern
            .split('/')
            .map(|p| if p.starts_with('{') { value } else { p })
            .collect::<Vec<_>>()
            .join("/")
    }

    #[test]
    fn every_route_is_reachable() {
        for route in ROUTES {
            let path = sample(route.pattern, "123");
            match find(route.method, &path) {
                Matched::Route(found, params) => {
                    assert_eq!(found, route, "{path}");
                    assert_eq!(params.len(), route.pattern.matches('{').count());
                }
                other => panic!("{} {path} resolved to {other:?}", route.method),
            }
        }
    }

    #[test]
    fn methods_and_unknown_paths() {
        assert_eq!(find("PUT", "/users"), Matched::Method("POST".into()));
        assert_eq!(
            find("PATCH", "/tweets/5"),
            Matched::Method("GET, DELETE".into())
        );
        assert_eq!(find("GET", "/no/such/thing"), Matched::None);
        assert_eq!(find("GET", "/metrics"), Matched::None);
        match find("GET", "/%40alice/profile") {
            Matched::Route(route, params) => {
                assert_eq!(route.pattern, "/{userId}/profile");
                assert_eq!(params, vec!["@alice".to_string()]);
            }
            other => panic!("{other:?}"),
        }
    }
}
