//! Sign-up, log-in and profiles.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use chirp_codec::body::{LogInBody, ProfileBody, SignUpBody};
use chirp_engine::ShardId;
use chirp_engine::{Error as EngineError, NewUser, ProfilePatch};

use super::{authenticate, authenticate_writer, blocking, body, param, read, resolve};
use crate::http::{json, ApiError, ApiResult, Problem};
use crate::routes::App;
use crate::views::ProfileView;

/// A fresh session.
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    /// Bearer token for `Authorization: Bearer <token>`.
    token: String,
    /// The user it authenticates.
    user_id: String,
    /// Its id in `GET /sessions`.
    session_id: String,
    /// When it expires unless it is used (each use extends it), RFC 3339 UTC.
    expires_at: String,
}

/// Sign up.
#[utoipa::path(post, path = "/users", tag = "accounts", request_body = SignUpBody,
    responses(
        (status = 201, description = "The new profile", body = ProfileView, links(
            ("GetProfile" = (operation_id = "get_profile", parameters(("userId" = "$response.body#/id")))),
            ("UserTweets" = (operation_id = "user_tweets", parameters(("userId" = "$response.body#/id")))),
            ("Followers" = (operation_id = "followers", parameters(("userId" = "$response.body#/id")))),
            ("Following" = (operation_id = "following", parameters(("userId" = "$response.body#/id")))),
            ("Follow" = (operation_id = "follow", parameters(("userId" = "$response.body#/id")))),
            ("FollowedBy" = (operation_id = "follow", parameters(("id" = "$response.body#/id")))),
            ("PatchProfile" = (operation_id = "patch_profile", parameters(("userId" = "$response.body#/id")))),
            ("LogIn" = (operation_id = "log_in", request_body = json!({
                "handle": "$response.body#/handle", "password": "$request.body#/password"}))),
        )),
        (status = 429, description = "Over a rate limit; `Retry-After` says when to retry", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many password checks at once; `Retry-After` says when to retry", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Handle taken", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn sign_up(app: &App, req: Request<Incoming>) -> ApiResult {
    let client = app.limits.client(&req);
    let b: SignUpBody = body(req).await?;
    app.limits.sign_up(client).map_err(ApiError::RateLimited)?;
    let new = NewUser {
        handle: b.handle,
        password: b.password,
        display_name: b.display_name,
        email: None,
    };
    let profile = blocking(app, move |n| n.sign_up(new)).await?;
    json(StatusCode::CREATED, &ProfileView::from(&profile))
}

/// Log in for a bearer token.
#[utoipa::path(post, path = "/sessions", tag = "accounts", request_body = LogInBody,
    responses(
        (status = 200, description = "A new session", body = SessionView),
        (status = 429, description = "Over a rate limit; `Retry-After` says when to retry", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many password checks at once; `Retry-After` says when to retry", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Unknown handle or wrong password", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The account is suspended", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A missing, unknown or mistyped field", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn log_in(app: &App, req: Request<Incoming>) -> ApiResult {
    let client = app.limits.client(&req);
    let forwarded = req.headers().contains_key(crate::forward::FORWARDED);
    let b: LogInBody = body(req).await?;
    app.limits
        .login_allowed(&b.handle, client)
        .map_err(ApiError::RateLimited)?;
    let handle = b.handle.clone();
    // On a cluster node, a user whose shard another node is the primary of logs in there.
    if let Some(shard) = login_shard(app, forwarded, &b.handle).await {
        let body = serde_json::json!({"handle": b.handle, "password": b.password}).to_string();
        let mut headers = hyper::HeaderMap::new();
        headers.insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        return crate::forward::to_primary(
            app,
            shard,
            &hyper::Method::POST,
            &hyper::Uri::from_static("/sessions"),
            &headers,
            bytes::Bytes::from(body),
        )
        .await;
    }
    let session = match blocking(app, move |n| n.log_in(&b.handle, &b.password)).await {
        Err(ApiError::Engine(EngineError::Unauthenticated(why))) => {
            app.limits.login_failed(&handle, client);
            return Err(EngineError::Unauthenticated(why).into());
        }
        other => other?,
    };
    let out = SessionView {
        token: session.token,
        user_id: session.user_id.to_string(),
        session_id: chirp_engine::sessions::format_session_id(session.session_id),
        expires_at: crate::views::rfc3339(session.expires_at_ms),
    };
    json(StatusCode::OK, &out)
}

/// Where a log-in as `login` (a handle or an e-mail address) must run, when not here: the
/// user's shard, on a cluster node that is not its primary (an unknown name logs in here, and
/// fails like any unknown name). Only the name's claim is read to find the user.
pub(crate) async fn login_shard(app: &App, forwarded: bool, login: &str) -> Option<ShardId> {
    app.owners.as_ref().filter(|_| !forwarded)?;
    let login = login.to_owned();
    let user = super::read(app, move |n| n.login_user(&login))
        .await
        .ok()??;
    let shard = app.node.placement().of_user(user);
    (!app.node.is_primary_of(shard)).then_some(shard)
}

/// Log out: the bearer token of the request stops working at once.
#[utoipa::path(delete, path = "/sessions", tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The session is over"),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn log_out(app: &App, req: Request<Incoming>) -> ApiResult {
    authenticate(app, &req).await?;
    let token = crate::http::bearer(req.headers())
        .unwrap_or_default()
        .to_owned();
    blocking(app, move |n| n.log_out(&token)).await?;
    Ok(crate::http::empty(StatusCode::NO_CONTENT))
}

/// Read a profile.
#[utoipa::path(get, path = "/{userId}/profile", tag = "accounts",
    params(("userId" = String, Path, description = "Numeric user id or `@handle`")),
    responses(
        (status = 200, description = "The profile", body = ProfileView),
        (status = 404, description = "Unknown user", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_profile(app: &App, params: &[String]) -> ApiResult {
    let user = resolve(app, param(params, 0)).await?;
    let profile = read(app, move |n| n.profile(user)).await?;
    json(StatusCode::OK, &ProfileView::from(&profile))
}

/// Update your own profile.
#[utoipa::path(patch, path = "/{userId}/profile", tag = "accounts", request_body = ProfileBody,
    params(("userId" = String, Path, description = "Numeric user id or `@handle`")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The updated profile", body = ProfileView),
        (status = 429, description = "Over a rate limit; `Retry-After` says when to retry", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not your profile", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown user", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn patch_profile(app: &App, req: Request<Incoming>, params: &[String]) -> ApiResult {
    let me = authenticate_writer(app, &req).await?;
    let user = resolve(app, param(params, 0)).await?;
    if me != user {
        return Err(EngineError::Forbidden("you can only edit your own profile").into());
    }
    let b: ProfileBody = body(req).await?;
    let patch = ProfilePatch {
        display_name: b.display_name,
        bio: b.bio,
        avatar_url: b.avatar_url,
        extra: b.extra,
    };
    let profile = blocking(app, move |n| n.update_profile(me, user, patch)).await?;
    json(StatusCode::OK, &ProfileView::from(&profile))
}
