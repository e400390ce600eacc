//! The admin listener: node status, compaction, checkpoints, verification, account actions,
//! promotion, digests and Prometheus metrics. It runs on its own address (loopback by
//! default) and is never routed from the public port, because its actions skip the public
//! API's permission checks. Every request must carry the admin token
//! (`Authorization: Bearer …`, see [`crate::admin_token`]); without it the answer is 401.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /status` | [`chirp_engine::NodeStats`] |
//! | `GET /metrics` | Prometheus text |
//! | `POST /compact` `{"shard"?}` | starts a compaction → 202 [`CompactJob`]; 409 if one runs |
//! | `GET /compact` | the current or last [`CompactJob`] |
//! | `POST /checkpoint` `{"dir"}` | writes a checkpoint to an absolute dir on the node |
//! | `POST /verify` | walks every shard ([`chirp_engine::VerifyReport`]) |
//! | `POST /users` `{"handle","password","display_name"?}` | creates an account |
//! | `GET /users/{user}` | an [`Account`] |
//! | `POST /users/{user}/suspend`, `/unsuspend` | → the [`Account`] |
//! | `POST /users/{user}/password` `{"password"}` | sets it, revokes sessions |
//! | `POST /users/{user}/tokens` | mints a bearer token |
//! | `POST /promote` | makes this replica the primary (epochs raised) |
//! | `GET /digest?oplog_from=LSN` | SHA-256 of each column family per shard (null: not held here) |

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use tracing::Instrument;

use chirp_engine::{Account, CompactJob, Error as EngineError, MintedToken, NewUser, Node};
use chirp_replication::Replication;
use serde_json::{Map, Value};

use crate::http::{self, bytes_response, json, parse_json, query_param, ApiError, ApiResult, Body};
use crate::metrics::{self, Metrics};
use crate::routes::{request_id, REQUEST_ID};

/// Every admin route (method, path pattern), as the table at the top of this file lists them;
/// a test proves the public listener serves none of them.
pub const ADMIN_ROUTES: &[(&str, &str)] = &[
    ("GET", "/status"),
    ("GET", "/metrics"),
    ("POST", "/compact"),
    ("GET", "/compact"),
    ("POST", "/checkpoint"),
    ("POST", "/verify"),
    ("POST", "/users"),
    ("GET", "/users/{user}"),
    ("POST", "/users/{user}/suspend"),
    ("POST", "/users/{user}/unsuspend"),
    ("POST", "/users/{user}/password"),
    ("POST", "/users/{user}/tokens"),
    ("POST", "/promote"),
    ("GET", "/digest"),
];

/// What the admin handlers share.
pub struct AdminApp {
    /// The storage node.
    pub node: Arc<Node>,
    /// The metrics the public listener records.
    pub metrics: Arc<Metrics>,
    /// The node's replication, when it runs with one (promotion and digests need it).
    pub repl: Option<Arc<Replication>>,
    /// The bearer token every request must carry.
    token: String,
    compaction: Arc<Mutex<CompactJob>>,
}

impl AdminApp {
    /// The admin side of a node; every request must carry `token`.
    pub fn new(
        node: Arc<Node>,
        metrics: Arc<Metrics>,
        repl: Option<Arc<Replication>>,
        token: String,
    ) -> AdminApp {
        AdminApp {
            node,
            metrics,
            repl,
            token,
            compaction: Arc::new(Mutex::new(CompactJob::default())),
        }
    }

    fn replication(&self) -> ApiResult<&Arc<Replication>> {
        self.repl
            .as_ref()
            .ok_or(ApiError::Admin("this node runs without replication"))
    }
}

fn lock(job: &Mutex<CompactJob>) -> MutexGuard<'_, CompactJob> {
    job.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompactBody {
    #[serde(default)]
    shard: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointBody {
    dir: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUserBody {
    handle: String,
    password: String,
    #[serde(default)]
    display_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: String,
}

/// Serves one admin request.
pub async fn handle(app: Arc<AdminApp>, req: Request<Incoming>) -> Response<Body> {
    let id = request_id(&req);
    let span = tracing::info_span!("admin", request_id = %id, method = %req.method(), path = %req.uri().path());
    let authorization = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let mut resp = if crate::admin_token::authorized(authorization, &app.token) {
        route(&app, req)
            .instrument(span.clone())
            .await
            .unwrap_or_else(ApiError::into_response)
    } else {
        ApiError::from(EngineError::Unauthenticated(
            "the admin listener needs its token: Authorization: Bearer <DATA/admin.token>",
        ))
        .into_response()
    };
    span.in_scope(|| tracing::info!(status = resp.status().as_u16(), "admin request"));
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

async fn blocking<T, F>(app: &AdminApp, f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce(&Node) -> Result<T, EngineError> + Send + 'static,
{
    let node = Arc::clone(&app.node);
    tokio::task::spawn_blocking(move || f(&node))
        .await
        .map_err(|e| EngineError::Storage(format!("worker task failed: {e}")))?
        .map_err(ApiError::from)
}

async fn body<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> ApiResult<T> {
    let (parts, body) = req.into_parts();
    let bytes = http::read_body(&parts.headers, body, http::MAX_JSON_BODY).await?;
    if bytes.is_empty() {
        return parse_json(b"{}");
    }
    parse_json(&bytes)
}

async fn resolve(app: &AdminApp, reference: &str) -> ApiResult<u64> {
    let reference = reference.to_owned();
    blocking(app, move |n| n.resolve_user(&reference)).await
}

async fn route(app: &AdminApp, req: Request<Incoming>) -> ApiResult {
    let path = req.uri().path().trim_matches('/').to_owned();
    let segs: Vec<String> = path
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let method = req.method().clone();
    match (segs.as_slice(), method) {
        (["status"], Method::GET) => {
            let stats = blocking(app, |n| n.stats()).await?;
            json(StatusCode::OK, &stats)
        }
        (["metrics"], Method::GET) => {
            let stats = blocking(app, |n| n.stats()).await?;
            let text = app
                .metrics
                .render(&stats)
                .map_err(|e| EngineError::Storage(format!("rendering metrics: {e}")))?;
            Ok(bytes_response(StatusCode::OK, metrics::CONTENT_TYPE, text))
        }
        (["compact"], Method::GET) => json(StatusCode::OK, &*lock(&app.compaction)),
        (["compact"], Method::POST) => {
            let b: CompactBody = body(req).await?;
            start_compaction(app, b.shard)
        }
        (["checkpoint"], Method::POST) => {
            let b: CheckpointBody = body(req).await?;
            if !b.dir.is_absolute() {
                return Err(EngineError::invalid(
                    "dir",
                    "must be an absolute path (it is written by the node, not the client)",
                )
                .into());
            }
            let report = blocking(app, move |n| n.checkpoint(&b.dir)).await?;
            json(StatusCode::OK, &report)
        }
        (["verify"], Method::POST) => {
            let report = blocking(app, |n| n.verify(&mut |_| {})).await?;
            json(StatusCode::OK, &report)
        }
        (["users"], Method::POST) => {
            let b: CreateUserBody = body(req).await?;
            let new = NewUser {
                handle: b.handle,
                password: b.password,
                display_name: b.display_name,
                email: None,
            };
            let profile = blocking(app, move |n| n.sign_up(new)).await?;
            json(StatusCode::CREATED, &Account::from(&profile))
        }
        (["users", user], Method::GET) => {
            let id = resolve(app, user).await?;
            let profile = blocking(app, move |n| n.profile(id)).await?;
            json(StatusCode::OK, &Account::from(&profile))
        }
        (["users", user, action @ ("suspend" | "unsuspend")], Method::POST) => {
            let id = resolve(app, user).await?;
            let suspend = *action == "suspend";
            let profile = blocking(app, move |n| n.set_suspended(id, suspend)).await?;
            json(StatusCode::OK, &Account::from(&profile))
        }
        (["users", user, "password"], Method::POST) => {
            let id = resolve(app, user).await?;
            let b: PasswordBody = body(req).await?;
            let revoked_tokens = blocking(app, move |n| n.reset_password(id, &b.password)).await?;
            json(
                StatusCode::OK,
                &chirp_engine::PasswordReset { revoked_tokens },
            )
        }
        (["users", user, "tokens"], Method::POST) => {
            let id = resolve(app, user).await?;
            let session = blocking(app, move |n| n.mint_token(id)).await?;
            let out = MintedToken {
                token: session.token,
                user_id: session.user_id,
            };
            json(StatusCode::CREATED, &out)
        }
        (["promote"], Method::POST) => {
            let epochs = app.replication()?.promote().await.map_err(|e| {
                ApiError::Engine(EngineError::Storage(format!("promotion failed: {e}")))
            })?;
            json(
                StatusCode::OK,
                &serde_json::json!({"role": "primary", "epochs": epochs}),
            )
        }
        (["digest"], Method::GET) => {
            app.replication()?;
            let from = query_param(req.uri().query(), "oplog_from")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            let shards = blocking(app, move |n| digests(n, from)).await?;
            json(StatusCode::OK, &serde_json::json!({ "shards": shards }))
        }
        _ => Err(ApiError::NoRoute),
    }
}

/// Per shard, the digest of each column family but meta (the oplog from `from`); null for a
/// shard a cluster node does not hold.
fn digests(n: &Node, from: u64) -> Result<Vec<Value>, EngineError> {
    (0..n.shard_count())
        .map(|s| {
            let digest = match n.digest(s, from) {
                Err(EngineError::NotHere(_)) => return Ok(Value::Null),
                other => other?,
            };
            let cfs: Map<String, Value> = digest
                .into_iter()
                .map(|(cf, d)| (cf.to_string(), Value::String(d)))
                .collect();
            Ok(Value::Object(cfs))
        })
        .collect()
}

/// Starts a compaction on a blocking thread; clients poll `GET /compact` for progress.
fn start_compaction(app: &AdminApp, shard: Option<usize>) -> ApiResult {
    if let Some(s) = shard {
        if s >= app.node.shard_count() {
            return Err(EngineError::invalid(
                "shard",
                format!("this node has shards 0 to {}", app.node.shard_count() - 1),
            )
            .into());
        }
    }
    let snapshot = {
        let mut job = lock(&app.compaction);
        if job.running {
            return Err(EngineError::Conflict {
                field: "shard",
                message: "a compaction is already running".into(),
            }
            .into());
        }
        *job = CompactJob {
            running: true,
            shard,
            ..CompactJob::default()
        };
        job.clone()
    };
    let node = Arc::clone(&app.node);
    let state = Arc::clone(&app.compaction);
    tokio::task::spawn_blocking(move || {
        let result = node.compact(shard, &mut |p| lock(&state).progress = Some(p.clone()));
        let mut job = lock(&state);
        job.running = false;
        match result {
            Ok(report) => job.report = Some(report),
            Err(e) => {
                tracing::error!(error = %e, "compaction failed");
                job.error = Some(e.to_string());
            }
        }
    });
    json(StatusCode::ACCEPTED, &snapshot)
}
