//! `POST /media` (upload an image) and `GET /media/{id}` (serve it).

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION};
use hyper::{HeaderMap, Request, Response, StatusCode};
use serde::Serialize;

use chirp_engine::media::media_url;
use chirp_engine::{Error as EngineError, MediaDoc, MediaType};

use crate::api::{authenticate_writer, blocking};
use crate::http::Problem;
use crate::http::{self, empty, json, ApiError, ApiResult};
use crate::routes::App;

/// Room for the multipart framing (boundaries, part headers, other small fields) around the
/// file, on top of the image size limit.
pub(crate) const MULTIPART_OVERHEAD: usize = 64 * 1024;

/// Served images never change under their id, so caches may keep them for good.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Image bytes, as the OpenAPI document describes a raw body.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct ImageBytes(Vec<u8>);

/// The form upload: the image in its `file` field.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The image file.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// The upload's answer.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = UploadedMedia)]
pub struct MediaView {
    /// Media id, to list in a tweet's `media`.
    id: String,
    /// Where the image is served.
    url: String,
    /// MIME type, checked by decoding the image.
    content_type: String,
    /// Width in pixels.
    width: u32,
    /// Height in pixels.
    height: u32,
    /// Size of the stored file.
    bytes: u64,
}

impl From<&MediaDoc> for MediaView {
    fn from(m: &MediaDoc) -> Self {
        MediaView {
            id: m.id.to_string(),
            url: media_url(m.id),
            content_type: m.content_type.clone(),
            width: m.width,
            height: m.height,
            bytes: m.bytes,
        }
    }
}

fn header_str(headers: &HeaderMap, name: hyper::header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `POST /media`: the body is the image with its type, or a `multipart/form-data` form whose
/// `file` field is the image.
#[utoipa::path(post, path = "/media", tag = "media",
    request_body(description = "A PNG, JPEG, GIF or WebP image as the body (with its type), \
        or a multipart/form-data form whose `file` field is the image",
        content(
            (ImageBytes = "image/png"), (ImageBytes = "image/jpeg"), (ImageBytes = "image/gif"),
            (ImageBytes = "image/webp"), (UploadForm = "multipart/form-data"),
        )),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored; `Location` is its URL", body = MediaView),
        (status = 429, description = "Over a rate limit; `Retry-After` says when to retry", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "A broken multipart form", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than the image limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not an image type Chirp accepts, or not what it claims", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Undecodable image or missing `file` field", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn upload(app: &App, req: Request<Incoming>) -> ApiResult {
    let (me, req) = uploader(app, req).await?;
    let max = app.node.config().max_media_bytes;
    let (parts, body) = req.into_parts();
    let content_type = header_str(&parts.headers, CONTENT_TYPE)
        .unwrap_or("")
        .to_owned();
    let is_form = content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("multipart/form-data"));
    let (claimed, image) = if is_form {
        let raw = http::read_body(&parts.headers, body, max + MULTIPART_OVERHEAD).await?;
        form_file(&content_type, raw, max).await?
    } else {
        // Refuse a type we never accept before storing megabytes of body.
        if let Err(e) = MediaType::from_mime(&content_type) {
            http::discard(&parts.headers, body).await;
            return Err(e.into());
        }
        let raw = http::read_body(&parts.headers, body, max).await?;
        (content_type, raw)
    };
    let media = blocking(app, move |n| n.upload_media(me, &claimed, &image)).await?;
    let mut resp = json(StatusCode::CREATED, &MediaView::from(&media))?;
    if let Ok(loc) = HeaderValue::from_str(&media_url(media.id)) {
        resp.headers_mut().insert(LOCATION, loc);
    }
    Ok(resp)
}

/// The user an upload acts as (the write rate limit applies). A refusal before the body is
/// read still reads (and drops) what the client is sending: a connection closed with unread
/// data is reset, and the client would see that instead of the answer, or reuse the
/// connection and read an EOF.
pub(crate) async fn uploader(
    app: &App,
    req: Request<Incoming>,
) -> ApiResult<(u64, Request<Incoming>)> {
    match authenticate_writer(app, &req).await {
        Ok(me) => Ok((me, req)),
        Err(e) => {
            let (parts, body) = req.into_parts();
            http::discard(&parts.headers, body).await;
            Err(e)
        }
    }
}

/// The `file` field of a form and the type it claims (sniffed from its first bytes when the
/// part names none, as some clients send `application/octet-stream`).
async fn form_file(content_type: &str, raw: Bytes, max: usize) -> ApiResult<(String, Bytes)> {
    let malformed = |e: multer::Error| ApiError::MalformedBody(format!("multipart body: {e}"));
    let boundary = multer::parse_boundary(content_type).map_err(malformed)?;
    let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(raw) });
    let mut form = multer::Multipart::new(stream, boundary);
    while let Some(field) = form.next_field().await.map_err(malformed)? {
        if field.name() != Some("file") {
            continue;
        }
        let declared = field.content_type().map(|m| m.essence_str().to_owned());
        let bytes = field.bytes().await.map_err(malformed)?;
        if bytes.len() > max {
            return Err(EngineError::TooLarge(max).into());
        }
        let claimed = match declared.as_deref() {
            None | Some("application/octet-stream") => MediaType::sniff(&bytes)
                .map(|t| t.mime().to_owned())
                .ok_or_else(|| {
                    EngineError::UnsupportedType(
                        "the file is not a PNG, JPEG, GIF or WebP image".into(),
                    )
                })?,
            Some(t) => t.to_owned(),
        };
        return Ok((claimed, bytes));
    }
    Err(EngineError::invalid("file", "the form has no `file` field").into())
}

/// Whether an `If-None-Match` value names `etag` (weak comparison, as RFC 9110 asks for GET).
fn matches_etag(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// `HEAD /media/{id}`: the headers of [`serve`] (hyper drops the body of a HEAD answer).
#[utoipa::path(head, path = "/media/{id}", tag = "media",
    params(("id" = String, Path, description = "Media id")),
    responses(
        (status = 200, description = "The image's headers"),
        (status = 304, description = "The client's copy (`If-None-Match`) is current"),
        (status = 404, description = "Unknown media"),
    ))]
pub async fn serve_head(app: &App, req: &Request<Incoming>, raw_id: &str) -> ApiResult {
    serve(app, req, raw_id).await
}

/// `GET /media/{id}`: the image bytes, cacheable for good, or 304 when the client has them.
#[utoipa::path(get, path = "/media/{id}", tag = "media",
    params(("id" = String, Path, description = "Media id")),
    responses(
        (status = 200, description = "The image; immutable, with an ETag",
            content((ImageBytes = "image/png"), (ImageBytes = "image/jpeg"), (ImageBytes = "image/gif"), (ImageBytes = "image/webp"))),
        (status = 304, description = "The client's copy (`If-None-Match`) is current"),
        (status = 404, description = "Unknown media", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn serve(app: &App, req: &Request<Incoming>, raw_id: &str) -> ApiResult {
    let id: u64 = raw_id
        .parse()
        .map_err(|_| ApiError::Engine(EngineError::NotFound("media")))?;
    let if_none_match = header_str(req.headers(), IF_NONE_MATCH).map(str::to_owned);
    let (media, blob) = blocking(app, move |n| {
        let media = n.media(id)?;
        let etag = format!("\"{}\"", media.sha256);
        if if_none_match.is_some_and(|v| matches_etag(&v, &etag)) {
            return Ok((media, None));
        }
        let blob = n.media_blob(&media)?;
        Ok((media, Some(blob)))
    })
    .await?;
    let mut resp = match blob {
        Some(blob) => Response::new(Full::new(Bytes::from_owner(blob))),
        None => empty(StatusCode::NOT_MODIFIED),
    };
    let headers = resp.headers_mut();
    let etag = HeaderValue::from_str(&format!("\"{}\"", media.sha256))
        .map_err(|e| EngineError::Corrupt(format!("stored digest: {e}")))?;
    headers.insert(ETAG, etag);
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    if resp.status() == StatusCode::OK {
        let ctype = HeaderValue::from_str(&media.content_type)
            .map_err(|e| EngineError::Corrupt(format!("stored content type: {e}")))?;
        let headers = resp.headers_mut();
        headers.insert(CONTENT_TYPE, ctype);
        // The type was checked by decoding; browsers must not second-guess it.
        headers.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_match_as_rfc_9110_says() {
        let e = "\"abc\"";
        assert!(matches_etag("\"abc\"", e));
        assert!(matches_etag("W/\"abc\"", e));
        assert!(matches_etag("\"x\", \"abc\"", e));
        assert!(matches_etag("*", e));
        assert!(!matches_etag("\"abcd\"", e));
        assert!(!matches_etag("abc", e));
    }
}
