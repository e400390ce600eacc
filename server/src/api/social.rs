//! Following and the follower lists.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use chirp_engine::Error as EngineError;

use super::{authenticate_writer, blocking, page_request, param, read, resolve, PageParams};
use crate::http::{json, ApiResult, Problem};
use crate::routes::App;
use crate::views::UserPage;

/// The state of an edge after a follow or unfollow.
#[derive(Serialize, ToSchema)]
pub struct FollowState {
    /// Whether the user now follows the other.
    following: bool,
}

async fn set_follow(
    app: &App,
    req: Request<Incoming>,
    params: &[String],
    follow: bool,
) -> ApiResult {
    let me = authenticate_writer(app, &req).await?;
    let user = resolve(app, param(params, 0)).await?;
    if me != user {
        return Err(EngineError::Forbidden("you can only follow or unfollow as yourself").into());
    }
    let other = resolve(app, param(params, 1)).await?;
    blocking(app, move |n| {
        if follow {
            n.follow(me, user, other)
        } else {
            n.unfollow(me, user, other)
        }
    })
    .await?;
    json(StatusCode::OK, &FollowState { following: follow })
}

/// Follow someone (only as yourself; idempotent).
#[utoipa::path(post, path = "/{userId}/follow/{id}", tag = "social",
    params(
        ("userId" = String, Path, description = "You: numeric user id or `@handle`"),
        ("id" = String, Path, description = "Whom to follow: numeric user id or `@handle`"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Now following", body = FollowState, links(
            ("Feed" = (operation_id = "feed")),
            ("Unfollow" = (operation_id = "unfollow", parameters(
                ("userId" = "$request.path.userId"), ("id" = "$request.path.id")))),
            ("Following" = (operation_id = "following", parameters(("userId" = "$request.path.userId")))),
            ("Followers" = (operation_id = "followers", parameters(("userId" = "$request.path.id")))),
        )),
        (status = 429, description = "Over a rate limit; `Retry-After` says when to retry", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Acting as someone else", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Following yourself", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn follow(app: &App, req: Request<Incoming>, params: &[String]) -> ApiResult {
    set_follow(app, req, params, true).await
}

/// Unfollow someone (only as yourself; idempotent).
#[utoipa::path(delete, path = "/{userId}/follow/{id}", tag = "social",
    params(
        ("userId" = String, Path, description = "You: numeric user id or `@handle`"),
        ("id" = String, Path, description = "Whom to unfollow: numeric user id or `@handle`"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Not following", body = FollowState),
        (status = 429, description = "Over a rate limit; `Retry-After` says when to retry", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Acting as someone else", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown user", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn unfollow(app: &App, req: Request<Incoming>, params: &[String]) -> ApiResult {
    set_follow(app, req, params, false).await
}

async fn list(app: &App, req: Request<Incoming>, params: &[String], followers: bool) -> ApiResult {
    let user = resolve(app, param(params, 0)).await?;
    let page = page_request(&req)?;
    let users = read(app, move |n| {
        if followers {
            n.followers(user, page)
        } else {
            n.following(user, page)
        }
    })
    .await?;
    json(StatusCode::OK, &UserPage::from(&users))
}

/// The users following someone, by ascending user id.
#[utoipa::path(get, path = "/{userId}/followers", tag = "social",
    params(("userId" = String, Path, description = "Numeric user id or `@handle`"), PageParams),
    responses(
        (status = 200, description = "A page of followers", body = UserPage),
        (status = 404, description = "Unknown user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad `limit` or `cursor`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn followers(app: &App, req: Request<Incoming>, params: &[String]) -> ApiResult {
    list(app, req, params, true).await
}

/// The users someone follows, by ascending user id.
#[utoipa::path(get, path = "/{userId}/following", tag = "social",
    params(("userId" = String, Path, description = "Numeric user id or `@handle`"), PageParams),
    responses(
        (status = 200, description = "A page of followees", body = UserPage),
        (status = 404, description = "Unknown user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad `limit` or `cursor`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn following(app: &App, req: Request<Incoming>, params: &[String]) -> ApiResult {
    list(app, req, params, false).await
}
