//! HTTP plumbing: the API error type, problem-details responses, JSON bodies, query strings.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, EXPECT};
use hyper::{HeaderMap, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use chirp_engine::Error as EngineError;

/// Largest JSON request body, in bytes.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// The response body type of every handler.
pub type Body = Full<Bytes>;

/// Everything a request can fail with, each with its status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON.
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    /// The body is not in the form its content type says (e.g. a broken multipart form).
    #[error("{0}")]
    MalformedBody(String),
    /// A body field is missing or has the wrong type; `field` names it.
    #[error("{field}: {message}")]
    InvalidBody {
        /// The offending field (a JSON path).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The body exceeds the size limit.
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    /// No route has this path.
    #[error("no such endpoint")]
    NoRoute,
    /// The path exists but not with this method.
    #[error("method not allowed; allowed: {0}")]
    Method(String),
    /// A sync-mode write was committed here but no replica confirmed it in time.
    #[error("{0}; the write is durable on this primary but not confirmed by a replica, so a failover may lose it")]
    NotReplicated(String),
    /// An admin action this node cannot do (e.g. promotion without replication).
    #[error("{0}")]
    Admin(&'static str),
    /// Over a rate limit: 429 with `Retry-After` and `RateLimit-*` headers.
    #[error("too many {}; retry in {} s", .0.what, .0.retry_after_secs)]
    RateLimited(crate::limits::Limited),
    /// A failure of the domain layer.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<chirp_codec::Error> for ApiError {
    fn from(e: chirp_codec::Error) -> Self {
        match e {
            chirp_codec::Error::MalformedJson(why) => ApiError::MalformedJson(why),
            chirp_codec::Error::InvalidField { field, message } => {
                ApiError::InvalidBody { field, message }
            }
            other => ApiError::Engine(other.into()),
        }
    }
}

impl ApiError {
    /// The status code, the problem's slug and title, and the field it names, if any.
    pub(crate) fn parts(&self) -> (StatusCode, &'static str, &'static str, Option<&str>) {
        use EngineError as E;
        match self {
            ApiError::InvalidBody { field, .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                "Invalid field",
                Some(field),
            ),
            ApiError::MalformedJson(_) => (
                StatusCode::BAD_REQUEST,
                "malformed-json",
                "Malformed JSON",
                None,
            ),
            ApiError::MalformedBody(_) => (
                StatusCode::BAD_REQUEST,
                "malformed-body",
                "Malformed body",
                None,
            ),
            ApiError::TooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Body too large",
                None,
            ),
            ApiError::NoRoute => (StatusCode::NOT_FOUND, "no-route", "Not found", None),
            ApiError::NotReplicated(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not-replicated",
                "Not confirmed by a replica",
                None,
            ),
            ApiError::RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                None,
            ),
            ApiError::Admin(_) => (
                StatusCode::CONFLICT,
                "not-available",
                "Not available on this node",
                None,
            ),
            ApiError::Method(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method",
                "Method not allowed",
                None,
            ),
            ApiError::Engine(e) => match e {
                E::Invalid { field, .. } => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid-field",
                    "Invalid field",
                    Some(field),
                ),
                E::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found", None),
                E::Conflict { field, .. } => (
                    StatusCode::CONFLICT,
                    "conflict",
                    "Already taken",
                    Some(field),
                ),
                E::Unauthenticated(_) => (
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "Unauthenticated",
                    None,
                ),
                E::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden", None),
                E::TooLarge(_) => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too-large",
                    "Body too large",
                    None,
                ),
                E::UnsupportedType(_) => (
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    "Unsupported media type",
                    None,
                ),
                // 421: this node cannot answer the request; the detail names the primary.
                E::NotPrimary(_) => (
                    StatusCode::MISDIRECTED_REQUEST,
                    "not-primary",
                    "Not the primary",
                    None,
                ),
                // 421: the shard lives on another node (the detail names it).
                E::NotHere(_) => (
                    StatusCode::MISDIRECTED_REQUEST,
                    "not-here",
                    "Shard held elsewhere",
                    None,
                ),
                E::Unavailable(_) | E::WouldBlock => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Temporarily unavailable",
                    None,
                ),
                E::Storage(_) | E::Corrupt(_) | E::Io(_) | E::Locked(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    None,
                ),
            },
        }
    }

    /// The RFC 9457 problem-details response for this error.
    pub fn into_response(self) -> Response<Body> {
        let (status, slug, title, field) = self.parts();
        let detail = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "request failed");
            "the server failed to handle this request; it has been logged".to_string()
        } else {
            self.to_string()
        };
        let mut body = serde_json::json!({
            "type": format!("/problems/{slug}"),
            "title": title,
            "status": status.as_u16(),
            "detail": detail,
        });
        if let Some(field) = field {
            body["field"] = serde_json::Value::String(field.to_string());
        }
        let mut resp = bytes_response(status, "application/problem+json", body.to_string());
        if let ApiError::Method(allow) = &self {
            if let Ok(allow) = HeaderValue::from_str(allow) {
                resp.headers_mut().insert("allow", allow);
            }
        }
        if let ApiError::TooLarge(_) = self {
            // The rest of the body is never read, so the connection cannot carry another
            // request; saying so keeps clients from reusing it and reading an EOF.
            resp.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        if let ApiError::RateLimited(l) = &self {
            let headers = resp.headers_mut();
            for (name, value) in [
                ("retry-after", l.retry_after_secs.to_string()),
                ("ratelimit-limit", l.limit.to_string()),
                ("ratelimit-remaining", "0".to_string()),
                ("ratelimit-reset", l.retry_after_secs.to_string()),
            ] {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    headers.insert(name, v);
                }
            }
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// An RFC 9457 problem-details body, as every error response carries (described for the
/// OpenAPI document; responses are built by [`ApiError::into_response`]).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Problem {
    /// `/problems/<slug>`, e.g. `/problems/invalid-field`.
    r#type: String,
    /// Short summary of the problem type.
    title: String,
    /// The HTTP status code.
    status: u16,
    /// What went wrong with this request.
    detail: String,
    /// The offending request field, on 409 and 422.
    field: Option<String>,
}

/// The handlers' result type.
pub type ApiResult<T = Response<Body>> = Result<T, ApiError>;

/// A response with a body and content type.
pub fn bytes_response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> ApiResult {
    let body = serde_json::to_vec(value)
        .map_err(|e| EngineError::Corrupt(format!("response encoding: {e}")))?;
    Ok(bytes_response(status, "application/json", body))
}

/// An empty response.
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

/// Most bytes of an over-limit body read and thrown away before answering 413.
const MAX_DRAIN: usize = 16 << 20;
/// Longest time spent throwing such a body away.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads and discards what is left of a refused body (bounded in bytes and time). Closing
/// with unread data makes the kernel reset the connection, and a client still sending would
/// see a broken pipe instead of the 413.
async fn drain(mut body: Incoming) {
    let discard = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > MAX_DRAIN {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, discard).await;
}

/// Throws away the body of a request refused before reading it (bounded like the 413 path),
/// unless the client waits for `100 Continue` and so has sent nothing yet.
pub async fn discard(headers: &HeaderMap, body: Incoming) {
    let waits_for_continue = headers
        .get(EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if !waits_for_continue {
        drain(body).await;
    }
}

/// Reads a body of at most `limit` bytes; a larger one is refused with 413, from its
/// `Content-Length` when it declares one. A client that asked for `100-continue` is refused
/// before it sends the body at all.
pub async fn read_body(headers: &HeaderMap, mut body: Incoming, limit: usize) -> ApiResult<Bytes> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let waits_for_continue = headers
        .get(EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if declared.is_some_and(|n| n > limit as u64) {
        // Polling the body would send "100 Continue" and invite the upload being refused.
        if !waits_for_continue {
            drain(body).await;
        }
        return Err(ApiError::TooLarge(limit));
    }
    let capacity = declared.map_or(0, |n| n as usize).min(limit);
    let mut buf = BytesMut::with_capacity(capacity);
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError::MalformedBody(format!("the body could not be read: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                drain(body).await;
                return Err(ApiError::TooLarge(limit));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Parses a JSON body into `T`: syntax errors are 400, wrong or missing fields 422 naming
/// the field (the parsing itself is `chirp_codec::body`, fuzzed without the server).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    Ok(chirp_codec::body::parse_json(bytes)?)
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The value of a query parameter.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
