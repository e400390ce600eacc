//! The Mastodon client API, so people use Chirp from the apps and libraries they already have
//! (toot, Mastodon.py, masto.js clients, phone apps).
//!
//! A compatibility layer only: each endpoint is one handler over the same domain calls as
//! the native API (the engine keeps every rule), rendering Mastodon's entities
//! ([`entities`]). Parameters come as query, form, multipart or JSON ([`params`]); errors are
//! `{"error", "error_description"}` with Mastodon's status codes. What Chirp does not have
//! (boosts, favourites, lists, polls, notifications, mutes) answers with well-formed empty
//! results, or 404/422 as Mastodon would.
//!
//! Tokens are Chirp's sessions: a password grant logs in like `POST /sessions`; an
//! application's own token (client credentials) is `app.<client_id>.<secret>`, checked
//! against the stored application at each use.

pub mod accounts;
pub mod entities;
pub mod instance;
pub mod oauth;
pub mod params;
pub mod statuses;
pub mod timelines;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde_json::Value;

use chirp_engine::{AppDoc, Error as EngineError};

use crate::http::{bytes_response, ApiError, ApiResult, Body};
use crate::routes::{r, App, Route};
use entities::Base;

/// Every route of the Mastodon client API, matched before the native table (literal
/// segments before parameters, as there).
pub const ROUTES: &[Route] = &[
    r("GET", "/api/v1/instance"),
    r("GET", "/api/v2/instance"),
    r("GET", "/api/v1/instance/peers"),
    r("GET", "/api/v1/instance/rules"),
    r("GET", "/api/v1/custom_emojis"),
    r("POST", "/api/v1/apps"),
    r("GET", "/api/v1/apps/verify_credentials"),
    r("GET", "/oauth/authorize"),
    r("POST", "/oauth/authorize"),
    r("POST", "/oauth/token"),
    r("POST", "/oauth/revoke"),
    r("POST", "/api/v1/accounts"),
    r("GET", "/api/v1/accounts/verify_credentials"),
    r("PATCH", "/api/v1/accounts/update_credentials"),
    r("GET", "/api/v1/accounts/relationships"),
    r("GET", "/api/v1/accounts/lookup"),
    r("GET", "/api/v1/accounts/search"),
    r("GET", "/api/v1/accounts/{id}"),
    r("POST", "/api/v1/accounts/{id}/follow"),
    r("POST", "/api/v1/accounts/{id}/unfollow"),
    r("GET", "/api/v1/accounts/{id}/followers"),
    r("GET", "/api/v1/accounts/{id}/following"),
    r("GET", "/api/v1/accounts/{id}/statuses"),
    r("GET", "/api/v1/accounts/{id}/lists"),
    r("GET", "/api/v1/accounts/{id}/featured_tags"),
    r("POST", "/api/v1/accounts/{id}/{action}"),
    r("POST", "/api/v1/statuses"),
    r("GET", "/api/v1/statuses/{id}"),
    r("DELETE", "/api/v1/statuses/{id}"),
    r("GET", "/api/v1/statuses/{id}/context"),
    r("GET", "/api/v1/statuses/{id}/reblogged_by"),
    r("GET", "/api/v1/statuses/{id}/favourited_by"),
    r("POST", "/api/v1/statuses/{id}/{action}"),
    r("POST", "/api/v2/media"),
    r("POST", "/api/v1/media"),
    r("GET", "/api/v1/media/{id}"),
    r("PUT", "/api/v1/media/{id}"),
    r("GET", "/api/v1/timelines/home"),
    r("GET", "/api/v1/timelines/public"),
    r("GET", "/api/v1/timelines/tag/{hashtag}"),
    r("GET", "/api/v1/timelines/list/{id}"),
    r("GET", "/api/v2/search"),
    r("GET", "/api/v1/preferences"),
    r("GET", "/api/v1/markers"),
    // Features Chirp does not have: an empty list, as Mastodon answers a user without any.
    r("GET", "/api/v1/notifications"),
    r("GET", "/api/v1/lists"),
    r("GET", "/api/v1/mutes"),
    r("GET", "/api/v1/blocks"),
    r("GET", "/api/v1/favourites"),
    r("GET", "/api/v1/bookmarks"),
    r("GET", "/api/v1/follow_requests"),
    r("GET", "/api/v1/conversations"),
    r("GET", "/api/v1/scheduled_statuses"),
    r("GET", "/api/v1/filters"),
    r("GET", "/api/v2/filters"),
    r("GET", "/api/v1/featured_tags"),
    r("GET", "/api/v1/followed_tags"),
    r("GET", "/api/v1/announcements"),
    r("GET", "/api/v1/trends/statuses"),
    r("GET", "/api/v1/trends/tags"),
    r("GET", "/api/v1/trends/links"),
    r("GET", "/api/v1/domain_blocks"),
    r("GET", "/api/v1/endorsements"),
    r("GET", "/avatars/original/missing.png"),
];

/// The paths this layer answers (and renders errors for): its own prefixes.
pub fn owns(path: &str) -> bool {
    path.starts_with("/api/v1/")
        || path.starts_with("/api/v2/")
        || path.starts_with("/oauth/")
        || path.starts_with("/avatars/")
}

/// Runs a route of [`ROUTES`].
pub async fn dispatch(
    app: &App,
    route: &Route,
    req: Request<Incoming>,
    params: &[String],
) -> ApiResult {
    use crate::api::param;
    let p0 = param(params, 0);
    match (route.method, route.pattern) {
        ("GET", "/api/v1/instance") => instance::v1(app, &req).await,
        ("GET", "/api/v2/instance") => instance::v2(app, &req).await,
        ("GET", "/api/v1/instance/peers" | "/api/v1/instance/rules" | "/api/v1/custom_emojis") => {
            json_ok(&Value::Array(Vec::new()))
        }
        ("POST", "/api/v1/apps") => oauth::create_app(app, req).await,
        ("GET", "/api/v1/apps/verify_credentials") => oauth::verify_app(app, &req).await,
        ("GET", "/oauth/authorize") => oauth::authorize_page(app, &req).await,
        ("POST", "/oauth/authorize") => oauth::authorize(app, req).await,
        ("POST", "/oauth/token") => oauth::token(app, req).await,
        ("POST", "/oauth/revoke") => oauth::revoke(app, req).await,
        ("POST", "/api/v1/accounts") => accounts::sign_up(app, req).await,
        ("GET", "/api/v1/accounts/verify_credentials") => {
            accounts::verify_credentials(app, &req).await
        }
        ("PATCH", "/api/v1/accounts/update_credentials") => {
            accounts::update_credentials(app, req).await
        }
        ("GET", "/api/v1/accounts/relationships") => accounts::relationships(app, &req).await,
        ("GET", "/api/v1/accounts/lookup") => accounts::lookup(app, &req).await,
        ("GET", "/api/v1/accounts/search") => accounts::search(app, &req).await,
        ("GET", "/api/v1/accounts/{id}") => accounts::get(app, &req, p0).await,
        ("POST", "/api/v1/accounts/{id}/follow") => accounts::follow(app, &req, p0, true).await,
        ("POST", "/api/v1/accounts/{id}/unfollow") => accounts::follow(app, &req, p0, false).await,
        ("GET", "/api/v1/accounts/{id}/followers") => {
            accounts::list(app, &req, p0, accounts::List::Followers).await
        }
        ("GET", "/api/v1/accounts/{id}/following") => {
            accounts::list(app, &req, p0, accounts::List::Following).await
        }
        ("GET", "/api/v1/accounts/{id}/statuses") => timelines::account(app, &req, p0).await,
        ("GET", "/api/v1/accounts/{id}/lists" | "/api/v1/accounts/{id}/featured_tags") => {
            json_ok(&Value::Array(Vec::new()))
        }
        ("POST", "/api/v1/accounts/{id}/{action}") => {
            Err(unsupported(&format!("accounts/{}", param(params, 1))))
        }
        ("POST", "/api/v1/statuses") => statuses::post(app, req).await,
        ("GET", "/api/v1/statuses/{id}") => statuses::get(app, &req, p0).await,
        ("DELETE", "/api/v1/statuses/{id}") => statuses::delete(app, &req, p0).await,
        ("GET", "/api/v1/statuses/{id}/context") => statuses::context(app, p0).await,
        ("GET", "/api/v1/statuses/{id}/reblogged_by" | "/api/v1/statuses/{id}/favourited_by") => {
            statuses::nobody(app, p0).await
        }
        ("POST", "/api/v1/statuses/{id}/{action}") => {
            Err(unsupported(&format!("statuses/{}", param(params, 1))))
        }
        ("POST", "/api/v2/media" | "/api/v1/media") => statuses::upload(app, req).await,
        ("GET", "/api/v1/media/{id}") => statuses::media(app, &req, p0).await,
        ("PUT", "/api/v1/media/{id}") => statuses::describe(app, req, p0).await,
        ("GET", "/api/v1/timelines/home") => timelines::home(app, &req).await,
        ("GET", "/api/v1/timelines/public") => timelines::public(app, &req).await,
        ("GET", "/api/v1/timelines/tag/{hashtag}") => timelines::tag(app, &req, p0).await,
        ("GET", "/api/v1/timelines/list/{id}") => Err(EngineError::NotFound("list").into()),
        ("GET", "/api/v2/search") => timelines::search(app, &req).await,
        ("GET", "/api/v1/preferences") => accounts::preferences(app, &req).await,
        ("GET", "/api/v1/markers") => json_ok(&serde_json::json!({})),
        ("GET", "/avatars/original/missing.png") => Ok(missing_image()),
        ("GET", _) if route.pattern.starts_with("/api/") => json_ok(&Value::Array(Vec::new())),
        // A table entry without a handler; the route test catches it before release.
        _ => Err(ApiError::NoRoute),
    }
}

/// Now, in Unix seconds (a token's `created_at`).
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A `200 OK` JSON answer.
pub fn json_ok<T: serde::Serialize + ?Sized>(value: &T) -> ApiResult {
    let body = serde_json::to_vec(value)
        .map_err(|e| EngineError::Corrupt(format!("response encoding: {e}")))?;
    Ok(bytes_response(
        StatusCode::OK,
        "application/json; charset=utf-8",
        body,
    ))
}

/// What Mastodon does and Chirp does not: 422, naming it.
fn unsupported(what: &str) -> ApiError {
    ApiError::InvalidBody {
        field: what.to_owned(),
        message: "Chirp does not support this".into(),
    }
}

/// An error as Mastodon renders it: `{"error", "error_description"}`, the status code and
/// headers (`Retry-After`, `WWW-Authenticate`, `Allow`) as the native API sets them.
pub fn error_response(e: ApiError) -> Response<Body> {
    let message = match &e {
        ApiError::NoRoute | ApiError::Engine(EngineError::NotFound(_)) => {
            "Record not found".to_owned()
        }
        ApiError::Engine(EngineError::Invalid { field, message }) => {
            format!("Validation failed: {field} {message}")
        }
        ApiError::InvalidBody { field, message } => format!("Validation failed: {field} {message}"),
        ApiError::Engine(EngineError::Conflict { message, .. }) => {
            format!("Validation failed: {message}")
        }
        ApiError::Engine(EngineError::Unauthenticated(_)) => {
            "The access token is invalid".to_owned()
        }
        other => other.to_string(),
    };
    let detail = e.to_string();
    // A taken name is a failed validation to Mastodon (422), not a conflict.
    let taken = matches!(e, ApiError::Engine(EngineError::Conflict { .. }));
    // Mastodon's validation errors list what failed per field in `details`.
    let details = {
        let (_, _, _, field) = e.parts();
        let code = if taken { "ERR_TAKEN" } else { "ERR_INVALID" };
        match field {
            Some(f) => serde_json::json!({ f: [{"error": code, "description": detail}] }),
            None => serde_json::json!({}),
        }
    };
    let mut resp = e.into_response();
    if taken {
        *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    let status = resp.status();
    let body = if status == StatusCode::INTERNAL_SERVER_ERROR {
        serde_json::json!({"error": "Internal server error", "error_description": "the server failed to handle this request; it has been logged"})
    } else if status == StatusCode::UNPROCESSABLE_ENTITY {
        serde_json::json!({"error": message, "error_description": detail, "details": details})
    } else {
        serde_json::json!({"error": message, "error_description": detail})
    };
    *resp.body_mut() = Body::from(body.to_string());
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp.headers_mut().remove(hyper::header::CONTENT_LENGTH);
    resp
}

/// Where the request reached this server (for absolute URLs): its `Host`, and `https` only
/// when a proxy says so with `X-Forwarded-Proto`.
pub fn base(req: &Request<Incoming>) -> Base {
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
        })
        .unwrap_or("localhost")
        .to_owned();
    let https = req
        .headers()
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    Base {
        origin: format!("{}://{host}", if https { "https" } else { "http" }),
        host,
    }
}

/// Who a request's bearer token is: a user (a session) or an application (its client
/// credentials token).
pub enum Caller {
    /// A signed-in user.
    User(u64),
    /// An application acting for itself.
    App(Box<AppDoc>),
}

/// The prefix of an application's token.
const APP_TOKEN: &str = "app.";

/// The application token of a client id and secret.
pub fn app_token(client_id: &str, secret: &str) -> String {
    format!("{APP_TOKEN}{client_id}.{secret}")
}

/// The caller a request's bearer token names (401 without a valid one).
pub async fn caller(app: &App, req: &Request<Incoming>) -> ApiResult<Caller> {
    let token = crate::http::bearer(req.headers()).unwrap_or_default();
    if let Some(rest) = token.strip_prefix(APP_TOKEN) {
        let (client_id, secret) = rest.split_once('.').unwrap_or((rest, ""));
        let (client_id, secret) = (client_id.to_owned(), secret.to_owned());
        let found = crate::api::read(app, move |n| n.check_app(&client_id, &secret)).await?;
        return Ok(Caller::App(Box::new(found)));
    }
    Ok(Caller::User(crate::api::authenticate(app, req).await?))
}

/// A 1×1 transparent PNG, the avatar and header of accounts that set none.
fn missing_image() -> Response<Body> {
    const PNG: &[u8] = &[
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f,
        0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0b, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x60,
        0x00, 0x02, 0x00, 0x00, 0x05, 0x00, 0x01, 0x7a, 0x5e, 0xab, 0x3f, 0x00, 0x00, 0x00, 0x00,
        0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
    ];
    let mut resp = bytes_response(StatusCode::OK, "image/png", bytes::Bytes::from_static(PNG));
    resp.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::{find, Matched};

    #[test]
    fn every_route_is_reachable_and_owned() {
        for route in ROUTES {
            assert!(owns(route.pattern), "{}", route.pattern);
            let path = route
                .pattern
                .replace("{id}", "123")
                .replace("{hashtag}", "rust");
            let path = path.replace("{action}", "reblog");
            match find(route.method, &path) {
                Matched::Route(found, _) => assert_eq!(found, route, "{path}"),
                other => panic!("{} {path} resolved to {other:?}", route.method),
            }
        }
    }

    #[test]
    fn a_trailing_slash_names_the_same_endpoint() {
        // Mastodon.py asks for `/api/v1/instance/` and `/api/v2/instance/`.
        for path in [
            "/api/v1/instance/",
            "/api/v2/instance/",
            "/api/v1/timelines/home/",
        ] {
            match find("GET", path) {
                Matched::Route(found, _) => assert_eq!(format!("{}/", found.pattern), path),
                other => panic!("{path} resolved to {other:?}"),
            }
        }
        // Not for the native API's paths.
        assert_eq!(find("GET", "/feed/"), Matched::None);
    }

    #[test]
    fn the_missing_image_is_a_png() {
        use http_body_util::BodyExt;
        let resp = missing_image();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = futures_util::FutureExt::now_or_never(resp.into_body().collect())
            .expect("a full body is ready")
            .expect("infallible")
            .to_bytes();
        let image = image::load_from_memory(&body).expect("decodes");
        assert_eq!((image.width(), image.height()), (1, 1));
    }
}
