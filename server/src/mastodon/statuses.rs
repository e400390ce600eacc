//! Statuses (Chirp's tweets) and media attachments (its uploaded images).

use std::collections::HashMap;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::Request;
use serde_json::{json, Value};

use chirp_engine::{Error as EngineError, MediaType, NewTweet, Profile, Tweet};

use super::entities::{self, Base};
use super::params::Params;
use super::{base, json_ok};
use crate::api::{authenticate, authenticate_writer, blocking, read};
use crate::http::{self, ApiError, ApiResult};
use crate::routes::App;

/// What Chirp does not have, named in the 422 a status asking for it gets.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("in_reply_to_id", "Chirp has no replies"),
    ("poll", "Chirp has no polls"),
    ("scheduled_at", "Chirp has no scheduled posts"),
];

fn status_id(raw: &str) -> ApiResult<u64> {
    raw.parse()
        .map_err(|_| ApiError::Engine(EngineError::NotFound("tweet")))
}

/// The profiles of the tweets' authors, each read once, in one read.
pub(super) async fn authors(app: &App, tweets: &[Arc<Tweet>]) -> ApiResult<HashMap<u64, Profile>> {
    let mut ids: Vec<u64> = tweets.iter().map(|t| t.author_id).collect();
    ids.sort_unstable();
    ids.dedup();
    read(app, move |n| {
        ids.iter()
            .map(|&id| Ok((id, n.profile(id)?)))
            .collect::<chirp_engine::Result<HashMap<u64, Profile>>>()
    })
    .await
}

/// Renders tweets as statuses, with the authors [`authors`] read.
pub(super) fn statuses<'a>(
    base: &Base,
    tweets: &'a [Arc<Tweet>],
    authors: &'a HashMap<u64, Profile>,
) -> Vec<entities::Status<'a>> {
    tweets
        .iter()
        .filter_map(|t| Some(entities::status(base, t, authors.get(&t.author_id)?)))
        .collect()
}

/// One tweet as a status.
async fn one(app: &App, base: &Base, tweet: Arc<Tweet>, source: bool) -> ApiResult {
    let tweets = [tweet];
    let authors = authors(app, &tweets).await?;
    let mut rendered = statuses(base, &tweets, &authors);
    let status = rendered.first_mut().ok_or(EngineError::NotFound("user"))?;
    if source {
        status.text = Some(&tweets[0].text);
    }
    json_ok(status)
}

/// `POST /api/v1/statuses`: posts a tweet (`status`, `media_ids[]`).
pub async fn post(app: &App, req: Request<Incoming>) -> ApiResult {
    let me = authenticate_writer(app, &req).await?;
    let b = base(&req);
    let p = Params::request(req, http::MAX_JSON_BODY).await?;
    for (field, why) in UNSUPPORTED {
        if p.get(field).is_some_and(|v| v.as_str() != Some("")) {
            return Err(ApiError::InvalidBody {
                field: (*field).into(),
                message: (*why).into(),
            });
        }
    }
    if let Some(v) = p
        .str("visibility")?
        .filter(|v| !v.is_empty() && v != "public")
    {
        return Err(ApiError::InvalidBody {
            field: "visibility".into(),
            message: format!("Chirp posts are public; {v:?} is not supported"),
        });
    }
    if p.bool("sensitive")? == Some(true) {
        return Err(ApiError::InvalidBody {
            field: "sensitive".into(),
            message: "Chirp has no sensitive-media marking".into(),
        });
    }
    if p.str("spoiler_text")?.is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::InvalidBody {
            field: "spoiler_text".into(),
            message: "Chirp has no content warnings".into(),
        });
    }
    let mut extra = serde_json::Map::new();
    if let Some(language) = super::accounts::language(&p, "language")? {
        extra.insert(entities::LANGUAGE_KEY.into(), Value::String(language));
    }
    let new = NewTweet {
        text: p.str("status")?.unwrap_or_default(),
        media: p.list("media_ids")?,
        extra,
    };
    let tweet = blocking(app, move |n| n.post_tweet(me, new)).await?;
    one(app, &b, tweet, false).await
}

/// `GET /api/v1/statuses/{id}`.
pub async fn get(app: &App, req: &Request<Incoming>, raw: &str) -> ApiResult {
    let id = status_id(raw)?;
    let tweet = read(app, move |n| n.tweet(id)).await?;
    one(app, &base(req), tweet, false).await
}

/// `DELETE /api/v1/statuses/{id}`: the deleted status, with its source `text` (clients
/// offer to redraft it).
pub async fn delete(app: &App, req: &Request<Incoming>, raw: &str) -> ApiResult {
    let me = authenticate_writer(app, req).await?;
    let id = status_id(raw)?;
    let tweet = read(app, move |n| n.tweet(id)).await?;
    blocking(app, move |n| n.delete_tweet(me, id)).await?;
    one(app, &base(req), tweet, true).await
}

/// `GET /api/v1/statuses/{id}/context`: Chirp has no threads, so none around any status.
pub async fn context(app: &App, raw: &str) -> ApiResult {
    let id = status_id(raw)?;
    read(app, move |n| n.tweet(id)).await?;
    json_ok(&json!({"ancestors": [], "descendants": []}))
}

/// `GET /api/v1/statuses/{id}/reblogged_by` and `…/favourited_by`: nobody (Chirp has
/// neither), for a status that exists.
pub async fn nobody(app: &App, raw: &str) -> ApiResult {
    let id = status_id(raw)?;
    read(app, move |n| n.tweet(id)).await?;
    json_ok(&Value::Array(Vec::new()))
}

/// The image type a file claims: its part's type, sniffed from its first bytes when it
/// names none (clients often send `application/octet-stream`).
pub(super) fn claimed_type(declared: Option<&str>, bytes: &[u8]) -> ApiResult<String> {
    match declared {
        None | Some("application/octet-stream") => MediaType::sniff(bytes)
            .map(|t| t.mime().to_owned())
            .ok_or_else(|| {
                EngineError::UnsupportedType(
                    "the file is not a PNG, JPEG, GIF or WebP image".into(),
                )
                .into()
            }),
        Some(t) => Ok(t.to_owned()),
    }
}

/// `POST /api/v2/media` (and v1): uploads an image from the `file` field; 200 with its URL
/// (it is stored before the answer, so the URL works at once).
pub async fn upload(app: &App, req: Request<Incoming>) -> ApiResult {
    let (me, req) = crate::media::uploader(app, req).await?;
    let b = base(&req);
    let max = app.node.config().max_media_bytes;
    let p = Params::request(req, max + crate::media::MULTIPART_OVERHEAD).await?;
    let file = p
        .file("file")
        .ok_or_else(|| EngineError::invalid("file", "the form has no `file` field"))?;
    if file.bytes.len() > max {
        return Err(EngineError::TooLarge(max).into());
    }
    let claimed = claimed_type(file.content_type.as_deref(), &file.bytes)?;
    let bytes = file.bytes.clone();
    let description = p.str("description")?;
    let media = blocking(app, move |n| {
        let media = n.upload_media(me, &claimed, &bytes)?;
        match description {
            Some(d) if !d.trim().is_empty() => n.describe_media(me, media.id, Some(d)),
            _ => Ok(media),
        }
    })
    .await?;
    json_ok(&entities::media_doc(&b, &media))
}

/// `PUT /api/v1/media/{id}`: sets an upload's description (before a status attaches it;
/// statuses keep the description they were posted with).
pub async fn describe(app: &App, req: Request<Incoming>, raw: &str) -> ApiResult {
    let me = authenticate_writer(app, &req).await?;
    let b = base(&req);
    let id: u64 = raw
        .parse()
        .map_err(|_| ApiError::Engine(EngineError::NotFound("media")))?;
    let p = Params::request(req, http::MAX_JSON_BODY).await?;
    let description = p.str("description")?;
    let media = blocking(app, move |n| n.describe_media(me, id, description)).await?;
    json_ok(&entities::media_doc(&b, &media))
}

/// `GET /api/v1/media/{id}`: one of the caller's uploads.
pub async fn media(app: &App, req: &Request<Incoming>, raw: &str) -> ApiResult {
    let me = authenticate(app, req).await?;
    let id: u64 = raw
        .parse()
        .map_err(|_| ApiError::Engine(EngineError::NotFound("media")))?;
    let found = read(app, move |n| n.media(id)).await?;
    if found.owner_id != me {
        return Err(EngineError::NotFound("media").into());
    }
    json_ok(&entities::media_doc(&base(req), &found))
}
