//! Accounts: sign-up, the caller's own account and profile edits, other accounts, follows
//! and relationships.

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::Request;
use serde_json::{json, Map, Value};

use chirp_engine::{Error as EngineError, NewUser, PageRequest, Profile, ProfilePatch};

use super::entities::{
    self, Base, BOT_KEY, DISCOVERABLE_KEY, FIELDS_KEY, HEADER_KEY, LANGUAGE_KEY,
};
use super::params::Params;
use super::{base, caller, json_ok, timelines, Caller};
use crate::api::{authenticate, authenticate_writer, blocking, read};
use crate::http::{self, ApiError, ApiResult};
use crate::routes::App;

/// Most profile fields, as Mastodon allows.
pub const MAX_FIELDS: usize = 4;
/// Longest field name or value, in characters.
pub const MAX_FIELD_CHARS: usize = 255;

/// A language code (ISO 639-1 or -3: two or three letters, any case); the empty text is
/// Some("") (clearing it).
pub(super) fn language(p: &Params, name: &'static str) -> ApiResult<Option<String>> {
    checked_language(p.str(name)?, name)
}

fn checked_language(value: Option<String>, name: &'static str) -> ApiResult<Option<String>> {
    match value {
        None => Ok(None),
        Some(l) if l.is_empty() => Ok(Some(l)),
        Some(l) if (2..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Ok(Some(l.to_ascii_lowercase()))
        }
        Some(_) => Err(EngineError::invalid(name, "must be an ISO 639 language code").into()),
    }
}

/// Refuses a setting Chirp does not have, unless it is set to what Chirp always does.
fn refuse_unless(value: Option<bool>, default: bool, field: &str, why: &str) -> ApiResult<()> {
    match value {
        Some(v) if v != default => Err(ApiError::InvalidBody {
            field: field.to_owned(),
            message: why.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// A user's profile.
pub(super) async fn profile(app: &App, user: u64) -> ApiResult<Profile> {
    read(app, move |n| n.profile(user)).await
}

/// The user an `{id}` path segment names (404 for anything else).
pub(super) async fn account_id(app: &App, raw: &str) -> ApiResult<u64> {
    if raw.parse::<u64>().is_err() {
        return Err(EngineError::NotFound("user").into());
    }
    let raw = raw.to_owned();
    read(app, move |n| n.resolve_user(&raw)).await
}

/// `POST /api/v1/accounts`: signs up, with an application's token; answers a token for the
/// new account.
pub async fn sign_up(app: &App, req: Request<Incoming>) -> ApiResult {
    let client = app.limits.client(&req);
    if let Caller::User(_) = caller(app, &req).await? {
        return Err(EngineError::Forbidden("sign-up takes an application's token").into());
    }
    let p = Params::request(req, http::MAX_JSON_BODY).await?;
    if p.bool("agreement")? != Some(true) {
        return Err(EngineError::invalid("agreement", "must be accepted").into());
    }
    let new = NewUser {
        handle: p.required("username")?,
        password: p.required("password")?,
        display_name: p.str("display_name")?.filter(|d| !d.is_empty()),
        email: Some(p.required("email")?),
    };
    app.limits.sign_up(client).map_err(ApiError::RateLimited)?;
    let session = blocking(app, move |n| {
        let profile = n.sign_up(new)?;
        n.mint_token(profile.id)
    })
    .await?;
    json_ok(&json!({
        "access_token": session.token,
        "token_type": "Bearer",
        "scope": "read write follow push",
        "created_at": super::now_secs(),
    }))
}

/// `GET /api/v1/accounts/verify_credentials`.
pub async fn verify_credentials(app: &App, req: &Request<Incoming>) -> ApiResult {
    let me = authenticate(app, req).await?;
    let p = profile(app, me).await?;
    json_ok(&entities::credential_account(&base(req), &p))
}

/// The profile fields of an update, checked.
fn fields(p: &Params) -> ApiResult<Option<Value>> {
    if p.get("fields_attributes").is_none() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for f in p.objects("fields_attributes")? {
        let text = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let (name, value) = (text("name"), text("value"));
        if name.trim().is_empty() && value.trim().is_empty() {
            continue;
        }
        for (what, s) in [("name", &name), ("value", &value)] {
            if s.chars().count() > MAX_FIELD_CHARS || s.chars().any(char::is_control) {
                return Err(ApiError::InvalidBody {
                    field: format!("fields_attributes[{}][{what}]", out.len()),
                    message: format!(
                        "must be at most {MAX_FIELD_CHARS} characters, without control characters"
                    ),
                });
            }
        }
        out.push(json!({"name": name, "value": value}));
    }
    if out.len() > MAX_FIELDS {
        return Err(ApiError::InvalidBody {
            field: "fields_attributes".into(),
            message: format!("at most {MAX_FIELDS} fields"),
        });
    }
    Ok(Some(Value::Array(out)))
}

/// Stores an uploaded profile image; its URL.
async fn upload_image(
    app: &App,
    me: u64,
    p: &Params,
    field: &'static str,
) -> ApiResult<Option<String>> {
    let Some(file) = p.file(field) else {
        return Ok(None);
    };
    let max = app.node.config().max_media_bytes;
    if file.bytes.len() > max {
        return Err(EngineError::TooLarge(max).into());
    }
    let claimed = super::statuses::claimed_type(file.content_type.as_deref(), &file.bytes)
        .map_err(|e| match e {
            ApiError::Engine(EngineError::UnsupportedType(why)) => ApiError::InvalidBody {
                field: field.into(),
                message: why,
            },
            e => e,
        })?;
    let bytes = file.bytes.clone();
    let media = blocking(app, move |n| n.upload_media(me, &claimed, &bytes)).await?;
    Ok(Some(chirp_engine::media::media_url(media.id)))
}

/// `PATCH /api/v1/accounts/update_credentials`: display name, note, profile fields, avatar
/// and header images.
pub async fn update_credentials(app: &App, req: Request<Incoming>) -> ApiResult {
    let me = authenticate_writer(app, &req).await?;
    let b = base(&req);
    let limit = app.node.config().max_media_bytes * 2 + crate::media::MULTIPART_OVERHEAD;
    let p = Params::request(req, limit).await?;
    refuse_unless(
        p.bool("locked")?,
        false,
        "locked",
        "Chirp has no follow requests: every account is open",
    )?;
    refuse_unless(
        p.nested_bool("source", "sensitive")?,
        false,
        "source[sensitive]",
        "Chirp has no sensitive-media marking",
    )?;
    if let Some(v) = p
        .nested_str("source", "privacy")?
        .filter(|v| !v.is_empty() && v != "public")
    {
        return Err(ApiError::InvalidBody {
            field: "source[privacy]".into(),
            message: format!("Chirp posts are public; {v:?} is not supported"),
        });
    }
    let mut extra = Map::new();
    if let Some(fields) = fields(&p)? {
        extra.insert(FIELDS_KEY.into(), fields);
    }
    for (key, value) in [
        (BOT_KEY, p.bool("bot")?),
        (DISCOVERABLE_KEY, p.bool("discoverable")?),
    ] {
        if let Some(v) = value {
            extra.insert(key.into(), Value::Bool(v));
        }
    }
    match checked_language(p.nested_str("source", "language")?, "source[language]")? {
        Some(l) if l.is_empty() => {
            extra.insert(LANGUAGE_KEY.into(), Value::Null);
        }
        Some(l) => {
            extra.insert(LANGUAGE_KEY.into(), Value::String(l));
        }
        None => {}
    }
    if let Some(url) = upload_image(app, me, &p, "header").await? {
        extra.insert(HEADER_KEY.into(), Value::String(url));
    }
    // An empty display name is Mastodon's "none": Chirp's is then the handle.
    let display_name = match p.str("display_name")? {
        Some(d) if d.is_empty() => Some(profile(app, me).await?.handle),
        other => other,
    };
    let patch = ProfilePatch {
        display_name,
        bio: p.str("note")?,
        avatar_url: upload_image(app, me, &p, "avatar").await?,
        extra: (!extra.is_empty()).then_some(extra),
    };
    let updated = blocking(app, move |n| n.update_profile(me, me, patch)).await?;
    json_ok(&entities::credential_account(&b, &updated))
}

/// `GET /api/v1/accounts/relationships?id[]=…`.
pub async fn relationships(app: &App, req: &Request<Incoming>) -> ApiResult {
    let me = authenticate(app, req).await?;
    let p = Params::query(req)?;
    let mut out = Vec::new();
    for raw in p.list("id")?.into_iter().take(40) {
        let Ok(other) = raw.parse::<u64>() else {
            continue;
        };
        // Both directions are read on the caller's shard: its following and followers rows.
        let (following, followed_by) = read(app, move |n| {
            Ok((n.is_following(me, other)?, n.is_followed_by(me, other)?))
        })
        .await?;
        out.push(entities::relationship(other, following, followed_by));
    }
    json_ok(&Value::Array(out))
}

/// The handle an `acct` names: `name`, `@name` or `name@this-host`; None for another
/// server's account.
fn local_handle(base: &Base, acct: &str) -> Option<String> {
    let acct = acct.trim().trim_start_matches('@');
    match acct.split_once('@') {
        None => Some(acct.to_owned()),
        Some((name, host)) if host.eq_ignore_ascii_case(&base.host) => Some(name.to_owned()),
        Some((name, host)) if host.split(':').next() == base.host.split(':').next() => {
            Some(name.to_owned())
        }
        Some(_) => None,
    }
}

/// The account of a handle, if any.
pub(super) async fn by_handle(app: &App, base: &Base, acct: &str) -> ApiResult<Option<Profile>> {
    let Some(handle) = local_handle(base, acct) else {
        return Ok(None);
    };
    let reference = format!("@{handle}");
    match read(app, move |n| n.resolve_user(&reference)).await {
        Ok(user) => Ok(Some(profile(app, user).await?)),
        Err(ApiError::Engine(EngineError::NotFound(_))) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `GET /api/v1/accounts/lookup?acct=`.
pub async fn lookup(app: &App, req: &Request<Incoming>) -> ApiResult {
    let p = Params::query(req)?;
    let acct = p.required("acct")?;
    let b = base(req);
    match by_handle(app, &b, &acct).await? {
        Some(found) => json_ok(&entities::account(&b, &found)),
        None => Err(EngineError::NotFound("user").into()),
    }
}

/// `GET /api/v1/accounts/search?q=`: the account whose handle is `q` (Chirp matches handles
/// exactly).
pub async fn search(app: &App, req: &Request<Incoming>) -> ApiResult {
    let p = Params::query(req)?;
    let q = p.required("q")?;
    let b = base(req);
    let found = by_handle(app, &b, &q).await?;
    let accounts: Vec<entities::Account<'_>> =
        found.iter().map(|f| entities::account(&b, f)).collect();
    json_ok(&accounts)
}

/// `GET /api/v1/accounts/{id}`.
pub async fn get(app: &App, req: &Request<Incoming>, raw: &str) -> ApiResult {
    let user = account_id(app, raw).await?;
    let found = profile(app, user).await?;
    json_ok(&entities::account(&base(req), &found))
}

/// `POST /api/v1/accounts/{id}/follow` and `…/unfollow`: the relationship after.
pub async fn follow(app: &App, req: &Request<Incoming>, raw: &str, follow: bool) -> ApiResult {
    let me = authenticate_writer(app, req).await?;
    let other = account_id(app, raw).await?;
    blocking(app, move |n| {
        if follow {
            n.follow(me, me, other)
        } else {
            n.unfollow(me, me, other)
        }
    })
    .await?;
    let followed_by = read(app, move |n| n.is_followed_by(me, other)).await?;
    json_ok(&entities::relationship(other, follow, followed_by))
}

/// Which list of an account.
#[derive(Debug, Clone, Copy)]
pub enum List {
    /// Who follows it.
    Followers,
    /// Whom it follows.
    Following,
}

/// `GET /api/v1/accounts/{id}/followers` and `…/following`, by ascending account id:
/// `max_id` continues after an account id; `Link: rel="next"` only when the page is full.
pub async fn list(app: &App, req: &Request<Incoming>, raw: &str, which: List) -> ApiResult {
    let user = account_id(app, raw).await?;
    let p = Params::query(req)?;
    let limit = timelines::limit(&p)?;
    let page = PageRequest {
        after: p.u64("max_id")?,
        limit,
    };
    let found = read(app, move |n| match which {
        List::Followers => n.followers(user, page),
        List::Following => n.following(user, page),
    })
    .await?;
    let b = base(req);
    let accounts: Vec<entities::Account<'_>> = found
        .items
        .iter()
        .map(|a| entities::account(&b, a))
        .collect();
    let mut resp = json_ok(&accounts)?;
    if let (true, Some(last)) = (found.items.len() == limit, found.items.last()) {
        let next = timelines::page_url(&b, req, &[("max_id", last.id)]);
        if let Ok(v) = HeaderValue::from_str(&format!("<{next}>; rel=\"next\"")) {
            resp.headers_mut().insert(hyper::header::LINK, v);
        }
    }
    Ok(resp)
}

/// `GET /api/v1/preferences`.
pub async fn preferences(app: &App, req: &Request<Incoming>) -> ApiResult {
    authenticate(app, req).await?;
    json_ok(&json!({
        "posting:default:visibility": "public",
        "posting:default:sensitive": false,
        "posting:default:language": null,
        "reading:expand:media": "default",
        "reading:expand:spoilers": false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accts_of_this_server_name_a_handle() {
        let b = Base {
            origin: "http://localhost:3000".into(),
            host: "localhost:3000".into(),
        };
        assert_eq!(local_handle(&b, "alice"), Some("alice".into()));
        assert_eq!(local_handle(&b, "@alice"), Some("alice".into()));
        assert_eq!(
            local_handle(&b, "alice@localhost:3000"),
            Some("alice".into())
        );
        assert_eq!(local_handle(&b, "alice@localhost"), Some("alice".into()));
        assert_eq!(local_handle(&b, "alice@mastodon.social"), None);
    }
}
