//! A user's own sessions: listing them and ending one (log-in and log-out are in
//! `accounts.rs`).

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use chirp_engine::sessions::{format_session_id, parse_session_id};
use chirp_engine::{Error as EngineError, SessionInfo};

use super::{authenticate_session, blocking, param, read};
use crate::http::{json, ApiResult, Problem};
use crate::routes::App;
use crate::views::rfc3339;

/// One of your sessions.
#[derive(Serialize, ToSchema)]
pub struct SessionInfoView {
    /// Session id (16 hex digits; not the token, and the token cannot be derived from it).
    id: String,
    /// When it was created by logging in, RFC 3339 UTC.
    created_at: String,
    /// When it last authenticated a request (recorded at most hourly), RFC 3339 UTC.
    last_used_at: String,
    /// When it expires unless it is used again, RFC 3339 UTC.
    expires_at: String,
    /// Whether this is the session of the request's token.
    current: bool,
}

/// Your live sessions, newest first.
#[derive(Serialize, ToSchema)]
pub struct SessionList {
    /// The sessions.
    sessions: Vec<SessionInfoView>,
}

fn view(s: &SessionInfo, current: u64) -> SessionInfoView {
    SessionInfoView {
        id: format_session_id(s.id),
        created_at: rfc3339(s.created_at_ms),
        last_used_at: rfc3339(s.last_used_ms),
        expires_at: rfc3339(s.expires_at_ms),
        current: s.id == current,
    }
}

/// List your sessions (the devices you are logged in on).
#[utoipa::path(get, path = "/sessions", tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Your live sessions, newest first", body = SessionList),
        (status = 401, description = "No, bad or expired token", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(app: &App, req: Request<Incoming>) -> ApiResult {
    let me = authenticate_session(app, &req).await?;
    let sessions = read(app, move |n| n.sessions(me.user_id)).await?;
    let out = SessionList {
        sessions: sessions.iter().map(|s| view(s, me.session_id)).collect(),
    };
    json(StatusCode::OK, &out)
}

/// End one of your sessions: its token stops working at once.
#[utoipa::path(delete, path = "/sessions/{id}", tag = "accounts",
    params(("id" = String, Path, description = "A session id from `GET /sessions`")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The session is over"),
        (status = 401, description = "No, bad or expired token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "You have no such session", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn end(app: &App, req: Request<Incoming>, params: &[String]) -> ApiResult {
    let me = authenticate_session(app, &req).await?;
    let id = parse_session_id(param(params, 0)).ok_or(EngineError::NotFound("session"))?;
    blocking(app, move |n| n.end_session(me.user_id, id)).await?;
    Ok(crate::http::empty(StatusCode::NO_CONTENT))
}
