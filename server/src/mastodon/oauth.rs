//! Applications and OAuth: `POST /api/v1/apps`, `POST /oauth/token` (password,
//! client credentials, authorization code), `GET|POST /oauth/authorize` (the out-of-band
//! flow: a small log-in page that prints the code) and `POST /oauth/revoke`.
//!
//! Access tokens are Chirp sessions, so they end like any session (log-out, password reset,
//! expiry). Authorization codes live on the node that issued them, for ten minutes and one
//! exchange; on a cluster, that node is the user's primary, and the code starts with the
//! user's id so the exchange is sent there too.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use rand::RngCore;
use serde_json::json;

use chirp_engine::{AppDoc, Error as EngineError, NewApp, Session};

use super::params::Params;
use super::{app_token, caller, json_ok, Caller};
use crate::http::{self, bytes_response, ApiError, ApiResult};
use crate::routes::App;

/// The redirect URI that shows the code instead of redirecting.
pub const OOB: &str = "urn:ietf:wg:oauth:2.0:oob";
/// How long an authorization code may wait for its exchange.
const CODE_LIFETIME: Duration = Duration::from_secs(600);
/// Most codes waiting at once on one node (older ones are dropped first).
const MAX_CODES: usize = 10_000;

/// Authorization codes waiting for their exchange.
#[derive(Default)]
pub struct Codes {
    waiting: Mutex<HashMap<String, Grant>>,
}

struct Grant {
    session: Session,
    client_id: String,
    redirect_uri: String,
    scope: String,
    issued: Instant,
}

impl Codes {
    fn issue(&self, grant: Grant) -> String {
        let mut secret = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let code = format!(
            "{}.{}",
            grant.session.user_id,
            secret
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.retain(|_, g| g.issued.elapsed() < CODE_LIFETIME);
            if waiting.len() >= MAX_CODES {
                if let Some(oldest) = waiting
                    .iter()
                    .min_by_key(|(_, g)| g.issued)
                    .map(|(k, _)| k.clone())
                {
                    waiting.remove(&oldest);
                }
            }
            waiting.insert(code.clone(), grant);
        }
        code
    }

    /// The grant of a code, once (a code is gone after its first exchange, right or wrong).
    fn take(&self, code: &str) -> Option<Grant> {
        let grant = self.waiting.lock().ok()?.remove(code)?;
        (grant.issued.elapsed() < CODE_LIFETIME).then_some(grant)
    }
}

/// An OAuth error: `{"error": code, "error_description": text}`.
fn oauth_error(status: StatusCode, code: &str, description: &str) -> ApiResult {
    Ok(bytes_response(
        status,
        "application/json; charset=utf-8",
        json!({"error": code, "error_description": description}).to_string(),
    ))
}

fn invalid_client() -> ApiResult {
    oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.",
    )
}

fn invalid_grant() -> ApiResult {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.",
    )
}

/// The token response.
fn token_response(token: &str, scope: &str, created_secs: u64) -> ApiResult {
    json_ok(&json!({
        "access_token": token,
        "token_type": "Bearer",
        "scope": scope,
        "created_at": created_secs,
    }))
}

/// The scopes a grant echoes: those asked for, else the application's, else `read`
/// (Mastodon.py refuses a token whose scope is narrower than it asked for).
fn granted_scope(asked: Option<String>, app: &AppDoc) -> String {
    asked
        .filter(|s| !s.trim().is_empty())
        .or_else(|| Some(app.scopes.clone()).filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| "read".to_owned())
}

/// The redirect URIs an application gave, as a list.
fn redirect_list(app: &AppDoc) -> Vec<&str> {
    app.redirect_uris
        .split(|c: char| c == '\n' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .collect()
}

fn application_json(app: &AppDoc) -> serde_json::Value {
    let redirects = redirect_list(app);
    json!({
        "id": app.client_id,
        "name": app.name,
        "website": app.website,
        "scopes": app.scopes.split_whitespace().collect::<Vec<_>>(),
        "redirect_uri": app.redirect_uris,
        "redirect_uris": redirects,
        "vapid_key": "",
    })
}

/// `POST /api/v1/apps`: registers a client application.
pub async fn create_app(app: &App, req: Request<Incoming>) -> ApiResult {
    let client = app.limits.client(&req);
    let p = Params::request(req, http::MAX_JSON_BODY).await?;
    app.limits.sign_up(client).map_err(ApiError::RateLimited)?;
    // A list of redirect URIs or one string of them, one per line.
    let redirect_uris = match p.list("redirect_uris")? {
        uris if uris.len() > 1 => uris.join("\n"),
        uris => uris.into_iter().next().unwrap_or_default(),
    };
    let new = NewApp {
        name: p.required("client_name")?,
        redirect_uris,
        scopes: p.str("scopes")?.unwrap_or_else(|| "read".into()),
        website: p.str("website")?,
    };
    let registered = crate::api::blocking(app, move |n| n.register_app(new)).await?;
    let mut out = application_json(&registered.app);
    out["client_id"] = json!(registered.app.client_id);
    out["client_secret"] = json!(registered.secret);
    out["client_secret_expires_at"] = json!(0);
    json_ok(&out)
}

/// `GET /api/v1/apps/verify_credentials`: the application a token belongs to.
pub async fn verify_app(app: &App, req: &Request<Incoming>) -> ApiResult {
    match caller(app, req).await? {
        Caller::App(found) => json_ok(&application_json(&found)),
        // A user's token names no application (sessions do not record one).
        Caller::User(_) => json_ok(&json!({
            "name": "Chirp", "website": null, "scopes": ["read", "write", "follow"],
            "redirect_uri": OOB, "redirect_uris": [OOB], "vapid_key": "",
        })),
    }
}

/// Checks a request's client id and secret.
async fn client(app: &App, p: &Params) -> ApiResult<Option<AppDoc>> {
    let (Some(id), Some(secret)) = (p.str("client_id")?, p.str("client_secret")?) else {
        return Ok(None);
    };
    match crate::api::read(app, move |n| n.check_app(&id, &secret)).await {
        Ok(found) => Ok(Some(found)),
        Err(ApiError::Engine(EngineError::Unauthenticated(_))) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `POST /oauth/token`.
pub async fn token(app: &App, req: Request<Incoming>) -> ApiResult {
    let ip = app.limits.client(&req);
    let forwarded = crate::forward::forwarded(&req);
    let (parts, body) = req.into_parts();
    let raw = http::read_body(&parts.headers, body, http::MAX_JSON_BODY).await?;
    let p = Params::parse(&parts, raw.clone()).await?;
    let grant = p.str("grant_type")?.unwrap_or_default();
    let Some(client_app) = client(app, &p).await? else {
        return invalid_client();
    };
    match grant.as_str() {
        "client_credentials" => {
            let secret = p.str("client_secret")?.unwrap_or_default();
            let scope = granted_scope(p.str("scope")?, &client_app);
            token_response(
                &app_token(&client_app.client_id, &secret),
                &scope,
                super::now_secs(),
            )
        }
        "password" => {
            let (Some(login), Some(password)) = (p.str("username")?, p.str("password")?) else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "The password grant needs username and password.",
                );
            };
            if let Some(answer) = log_in_elsewhere(app, ip, forwarded, &login, &parts, raw).await? {
                return Ok(answer);
            }
            let scope = granted_scope(p.str("scope")?, &client_app);
            let who = login.clone();
            match crate::api::blocking(app, move |n| n.log_in(&who, &password)).await {
                Ok(session) => token_response(&session.token, &scope, super::now_secs()),
                Err(ApiError::Engine(EngineError::Unauthenticated(_))) => {
                    app.limits.login_failed(&login, ip);
                    invalid_grant()
                }
                Err(ApiError::Engine(EngineError::Forbidden(why))) => {
                    oauth_error(StatusCode::FORBIDDEN, "invalid_grant", why)
                }
                Err(e) => Err(e),
            }
        }
        "authorization_code" => {
            let code = p.str("code")?.unwrap_or_default();
            // The code was issued at the user's primary: exchanged there.
            let user = code.split('.').next().and_then(|u| u.parse::<u64>().ok());
            if let (Some(user), false, true) = (user, forwarded, app.owners.is_some()) {
                let shard = app.node.placement().of_user(user);
                if !app.node.is_primary_of(shard) {
                    return crate::forward::to_primary(
                        app,
                        shard,
                        &parts.method,
                        &parts.uri,
                        &parts.headers,
                        raw,
                    )
                    .await;
                }
            }
            let redirect = p.str("redirect_uri")?.unwrap_or_else(|| OOB.to_owned());
            match app.oauth_codes.take(&code) {
                Some(g) if g.client_id == client_app.client_id && g.redirect_uri == redirect => {
                    let scope = granted_scope(p.str("scope")?, &client_app);
                    let scope = if g.scope.is_empty() { scope } else { g.scope };
                    token_response(&g.session.token, &scope, super::now_secs())
                }
                Some(g) => {
                    // A code presented by another client is spent: its session ends too.
                    let token = g.session.token;
                    let _ = crate::api::blocking(app, move |n| n.log_out(&token)).await;
                    invalid_grant()
                }
                None => invalid_grant(),
            }
        }
        "" => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing grant_type.",
        ),
        _ => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server.",
        ),
    }
}

/// Checks the log-in rate limit of `login`; then, on a cluster node that is not the user's
/// primary, sends the request (its body as read) there, since a log-in writes the session
/// on the user's shard: that node's answer, or None to log in here.
async fn log_in_elsewhere(
    app: &App,
    ip: Option<std::net::IpAddr>,
    forwarded: bool,
    login: &str,
    parts: &hyper::http::request::Parts,
    raw: Bytes,
) -> ApiResult<Option<hyper::Response<crate::http::Body>>> {
    app.limits
        .login_allowed(login, ip)
        .map_err(ApiError::RateLimited)?;
    let Some(shard) = crate::api::accounts::login_shard(app, forwarded, login).await else {
        return Ok(None);
    };
    let answer =
        crate::forward::to_primary(app, shard, &parts.method, &parts.uri, &parts.headers, raw)
            .await?;
    Ok(Some(answer))
}

/// `POST /oauth/revoke`: ends the session of a user's token (an application's token ends
/// with its application). Always `{}`, as RFC 7009 asks, for a token already gone too.
pub async fn revoke(app: &App, req: Request<Incoming>) -> ApiResult {
    let p = Params::request(req, http::MAX_JSON_BODY).await?;
    if client(app, &p).await?.is_none() {
        return invalid_client();
    }
    if let Some(token) = p.str("token")? {
        if chirp_engine::sessions::token_user(&token).is_some() {
            crate::api::blocking(app, move |n| n.log_out(&token)).await?;
        }
    }
    json_ok(&json!({}))
}

/// The log-in page's form fields, escaped for HTML.
struct AuthorizeForm {
    client_id: String,
    redirect_uri: String,
    scope: String,
}

fn page(title: &str, body: &str) -> ApiResult {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title>\
         <style>body{{font-family:sans-serif;max-width:24rem;margin:3rem auto;padding:0 1rem}}\
         input,button{{display:block;width:100%;margin:.5rem 0;padding:.5rem;box-sizing:border-box}}\
         code{{word-break:break-all;font-size:1.2rem}}</style></head><body>{body}</body></html>"
    );
    let mut resp = bytes_response(StatusCode::OK, "text/html; charset=utf-8", html);
    let headers = resp.headers_mut();
    headers.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    // No script, no framing (a framed log-in page invites clickjacking), forms post here only.
    headers.insert(
        hyper::header::CONTENT_SECURITY_POLICY,
        hyper::header::HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        hyper::header::REFERRER_POLICY,
        hyper::header::HeaderValue::from_static("no-referrer"),
    );
    Ok(resp)
}

fn login_page(app_name: &str, form: &AuthorizeForm, error: Option<&str>) -> ApiResult {
    use super::entities::escape;
    let error = error
        .map(|e| format!("<p role=\"alert\" style=\"color:#b00\">{}</p>", escape(e)))
        .unwrap_or_default();
    page(
        "Log in to Chirp",
        &format!(
            "<h1>Log in to Chirp</h1><p><b>{}</b> asks to use your account ({}).</p>{error}\
             <form method=\"post\" action=\"/oauth/authorize\">\
             <input type=\"hidden\" name=\"client_id\" value=\"{}\">\
             <input type=\"hidden\" name=\"redirect_uri\" value=\"{}\">\
             <input type=\"hidden\" name=\"scope\" value=\"{}\">\
             <input type=\"hidden\" name=\"response_type\" value=\"code\">\
             <label>Handle or e-mail<input name=\"username\" autocomplete=\"username\" required></label>\
             <label>Password<input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
             <button>Authorize</button></form>",
            escape(app_name),
            escape(&form.scope),
            escape(&form.client_id),
            escape(&form.redirect_uri),
            escape(&form.scope),
        ),
    )
}

/// The application an authorization request names, and its checked redirect URI.
async fn authorizing(app: &App, p: &Params) -> ApiResult<(AppDoc, AuthorizeForm)> {
    let client_id = p.required("client_id")?;
    let id = client_id.clone();
    let found = crate::api::read(app, move |n| n.app_of(&id))
        .await?
        .ok_or(EngineError::NotFound("client_id"))?;
    let redirect_uri = p.str("redirect_uri")?.unwrap_or_else(|| OOB.to_owned());
    if !redirect_list(&found).contains(&redirect_uri.as_str()) {
        return Err(
            EngineError::invalid("redirect_uri", "is not one the application registered").into(),
        );
    }
    if redirect_uri != OOB {
        return Err(EngineError::invalid(
            "redirect_uri",
            "only urn:ietf:wg:oauth:2.0:oob is supported: the code is shown to copy",
        )
        .into());
    }
    let scope = granted_scope(p.str("scope")?, &found);
    Ok((
        found,
        AuthorizeForm {
            client_id,
            redirect_uri,
            scope,
        },
    ))
}

/// `GET /oauth/authorize`: the log-in page.
pub async fn authorize_page(app: &App, req: &Request<Incoming>) -> ApiResult {
    let p = Params::query(req)?;
    if let Some(t) = p.str("response_type")? {
        if t != "code" {
            return Err(EngineError::invalid("response_type", "must be code").into());
        }
    }
    let (found, form) = authorizing(app, &p).await?;
    login_page(&found.name, &form, None)
}

/// `POST /oauth/authorize`: checks the log-in and shows the code.
pub async fn authorize(app: &App, req: Request<Incoming>) -> ApiResult {
    let ip = app.limits.client(&req);
    let forwarded = crate::forward::forwarded(&req);
    let (parts, body) = req.into_parts();
    let raw: Bytes = http::read_body(&parts.headers, body, http::MAX_JSON_BODY).await?;
    let p = Params::parse(&parts, raw.clone()).await?;
    let (found, form) = authorizing(app, &p).await?;
    let login = p.str("username")?.unwrap_or_default();
    let password = p.str("password")?.unwrap_or_default();
    if let Some(answer) = log_in_elsewhere(app, ip, forwarded, &login, &parts, raw).await? {
        return Ok(answer);
    }
    let who = login.clone();
    let session = match crate::api::blocking(app, move |n| n.log_in(&who, &password)).await {
        Ok(session) => session,
        Err(ApiError::Engine(EngineError::Unauthenticated(why) | EngineError::Forbidden(why))) => {
            app.limits.login_failed(&login, ip);
            let mut resp = login_page(&found.name, &form, Some(why))?;
            *resp.status_mut() = StatusCode::UNAUTHORIZED;
            return Ok(resp);
        }
        Err(e) => return Err(e),
    };
    let code = app.oauth_codes.issue(Grant {
        session,
        client_id: form.client_id,
        redirect_uri: form.redirect_uri,
        scope: form.scope,
        issued: Instant::now(),
    });
    page(
        "Authorization code",
        &format!(
            "<h1>Authorization code</h1><p>Copy this code into {}:</p><p><code id=\"code\">{}</code></p>\
             <p>It works once, within ten minutes.</p>",
            super::entities::escape(&found.name),
            super::entities::escape(&code)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(user: u64) -> Session {
        Session {
            token: format!("{user}.secret"),
            user_id: user,
            session_id: 1,
            expires_at_ms: 0,
        }
    }

    #[test]
    fn a_code_is_exchanged_once_and_names_its_user() {
        let codes = Codes::default();
        let code = codes.issue(Grant {
            session: session(42),
            client_id: "c".into(),
            redirect_uri: OOB.into(),
            scope: "read".into(),
            issued: Instant::now(),
        });
        assert!(code.starts_with("42."));
        assert_eq!(codes.take(&code).map(|g| g.session.user_id), Some(42));
        assert!(codes.take(&code).is_none(), "a code works once");
        let stale = codes.issue(Grant {
            session: session(7),
            client_id: "c".into(),
            redirect_uri: OOB.into(),
            scope: String::new(),
            issued: Instant::now() - CODE_LIFETIME,
        });
        assert!(codes.take(&stale).is_none(), "an expired code is refused");
    }
}
