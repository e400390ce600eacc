//! The public API: each request is matched to an endpoint, which parses its input, calls the
//! domain layer on a blocking thread and renders the result.

use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value};

use chirp_engine::{
    Error as EngineError, NewTweet, NewUser, Node, PageRequest, ProfilePatch, TagQuery,
};

use crate::http::{self, bearer, empty, json, parse_json, query_param, ApiError, ApiResult, Body};
use crate::views::{ProfileView, TweetPage, TweetView, UserPage};
use crate::web;

/// What every request handler shares.
pub struct App {
    /// The storage node.
    pub node: Arc<Node>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignUpBody {
    handle: String,
    password: String,
    #[serde(default)]
    display_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogInBody {
    handle: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TweetBody {
    text: String,
    #[serde(default)]
    media: Vec<String>,
    #[serde(default)]
    extra: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileBody {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    bio: Option<String>,
    #[serde(default)]
    avatar_url: Option<String>,
    #[serde(default)]
    extra: Option<Map<String, Value>>,
}

/// Serves one request; never fails (errors become problem responses).
pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let resp = route(&app, req)
        .await
        .unwrap_or_else(ApiError::into_response);
    tracing::debug!(
        %method,
        %path,
        status = resp.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    resp
}

/// Runs a domain call on the blocking pool (RocksDB reads and fsyncs block).
pub(crate) async fn blocking<T, F>(app: &App, f: F) -> ApiResult<T>
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

fn segments(path: &str) -> Vec<String> {
    path.trim_start_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

fn page_request(req: &Request<Incoming>) -> ApiResult<PageRequest> {
    let query = req.uri().query();
    let limit = query_param(query, "limit");
    let cursor = query_param(query, "cursor");
    Ok(PageRequest::parse(limit.as_deref(), cursor.as_deref())?)
}

pub(crate) async fn authenticate(app: &App, req: &Request<Incoming>) -> ApiResult<u64> {
    let Some(token) = bearer(req.headers()).map(str::to_owned) else {
        return Err(EngineError::Unauthenticated(
            "this endpoint needs an Authorization: Bearer token",
        )
        .into());
    };
    blocking(app, move |node| node.authenticate(&token)).await
}

async fn body<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> ApiResult<T> {
    let (parts, body) = req.into_parts();
    let bytes = http::read_body(&parts.headers, body, http::MAX_JSON_BODY).await?;
    parse_json(&bytes)
}

async fn resolve(app: &App, reference: &str) -> ApiResult<u64> {
    let reference = reference.to_owned();
    blocking(app, move |node| node.resolve_user(&reference)).await
}

fn tweet_id(raw: &str) -> ApiResult<u64> {
    raw.parse()
        .map_err(|_| ApiError::Engine(EngineError::NotFound("tweet")))
}

async fn route(app: &App, req: Request<Incoming>) -> ApiResult {
    let segs = segments(req.uri().path());
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let method = req.method().clone();
    match (segs.as_slice(), &method) {
        // The web client: user references are numeric or start with '@', so `/app/...`
        // never names a user and these two routes cannot shadow the API.
        // HEAD is answered like GET; hyper leaves the body out.
        ([""], m) if m == Method::GET || m == Method::HEAD => {
            web::index(req.headers()).ok_or(ApiError::NoRoute)
        }
        (["app", name], m) if m == Method::GET || m == Method::HEAD => {
            web::asset(name, req.headers()).ok_or(ApiError::NoRoute)
        }
        (["health"], &Method::GET) => {
            let c = app.node.cache_stats();
            let cache = serde_json::json!({
                "hits": c.hits, "misses": c.misses, "evictions": c.evictions,
                "bytes": c.bytes, "entries": c.entries, "capacity_bytes": c.capacity_bytes,
            });
            json(
                StatusCode::OK,
                &serde_json::json!({"status": "ok", "tweet_cache": cache}),
            )
        }
        (["search", "tags", tag], &Method::GET) => {
            let query = TagQuery::Tag((*tag).to_owned());
            search(app, &req, query).await
        }
        (["search", "tags"], &Method::GET) => {
            let q = req.uri().query();
            let split = |s: String| s.split(',').map(str::to_owned).collect::<Vec<_>>();
            let query =
                match (query_param(q, "all"), query_param(q, "any")) {
                    (Some(all), None) => TagQuery::All(split(all)),
                    (None, Some(any)) => TagQuery::Any(split(any)),
                    _ => return Err(EngineError::invalid(
                        "all",
                        "give exactly one of ?all=a,b or ?any=a,b (or use /search/tags/{hashtag})",
                    )
                    .into()),
                };
            search(app, &req, query).await
        }
        (["users"], &Method::POST) => {
            let b: SignUpBody = body(req).await?;
            let new = NewUser {
                handle: b.handle,
                password: b.password,
                display_name: b.display_name,
            };
            let profile = blocking(app, move |n| n.sign_up(new)).await?;
            json(StatusCode::CREATED, &ProfileView::from(&profile))
        }
        (["sessions"], &Method::POST) => {
            let b: LogInBody = body(req).await?;
            let session = blocking(app, move |n| n.log_in(&b.handle, &b.password)).await?;
            let out =
                serde_json::json!({"token": session.token, "user_id": session.user_id.to_string()});
            json(StatusCode::OK, &out)
        }
        (["tweet"], &Method::POST) => {
            let me = authenticate(app, &req).await?;
            let b: TweetBody = body(req).await?;
            let new = NewTweet {
                text: b.text,
                media: b.media,
                extra: b.extra,
            };
            let tweet = blocking(app, move |n| n.post_tweet(me, new)).await?;
            let mut resp = json(StatusCode::CREATED, &TweetView::from(&*tweet))?;
            if let Ok(loc) = format!("/tweets/{}", tweet.id).parse() {
                resp.headers_mut().insert(hyper::header::LOCATION, loc);
            }
            Ok(resp)
        }
        (["media"], &Method::POST) => crate::media::upload(app, req).await,
        (["media", id], m) if m == Method::GET || m == Method::HEAD => {
            crate::media::serve(app, &req, id).await
        }
        (["feed"], &Method::GET) => {
            let me = authenticate(app, &req).await?;
            let page = page_request(&req)?;
            let feed = blocking(app, move |n| n.home_feed(me, page)).await?;
            json(StatusCode::OK, &TweetPage::from(&feed))
        }
        (["tweets", id], &Method::GET) => {
            let id = tweet_id(id)?;
            let tweet = blocking(app, move |n| n.tweet(id)).await?;
            json(StatusCode::OK, &TweetView::from(&*tweet))
        }
        (["tweets", id], &Method::DELETE) => {
            let me = authenticate(app, &req).await?;
            let id = tweet_id(id)?;
            blocking(app, move |n| n.delete_tweet(me, id)).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        ([user, "profile"], &Method::GET) => {
            let user = resolve(app, user).await?;
            let profile = blocking(app, move |n| n.profile(user)).await?;
            json(StatusCode::OK, &ProfileView::from(&profile))
        }
        ([user, "profile"], &Method::PATCH) => {
            let me = authenticate(app, &req).await?;
            let user = resolve(app, user).await?;
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
        ([user, "follow", other], m) if m == Method::POST || m == Method::DELETE => {
            let me = authenticate(app, &req).await?;
            let user = resolve(app, user).await?;
            if me != user {
                return Err(
                    EngineError::Forbidden("you can only follow or unfollow as yourself").into(),
                );
            }
            let other = resolve(app, other).await?;
            let follow = m == Method::POST;
            blocking(app, move |n| {
                if follow {
                    n.follow(me, user, other)
                } else {
                    n.unfollow(me, user, other)
                }
            })
            .await?;
            json(StatusCode::OK, &serde_json::json!({"following": follow}))
        }
        ([user, list @ ("followers" | "following")], &Method::GET) => {
            let user = resolve(app, user).await?;
            let page = page_request(&req)?;
            let followers = *list == "followers";
            let users = blocking(app, move |n| {
                if followers {
                    n.followers(user, page)
                } else {
                    n.following(user, page)
                }
            })
            .await?;
            json(StatusCode::OK, &UserPage::from(&users))
        }
        ([user, "tweets"], &Method::GET) => {
            let user = resolve(app, user).await?;
            let page = page_request(&req)?;
            let tweets = blocking(app, move |n| n.user_timeline(user, page)).await?;
            json(StatusCode::OK, &TweetPage::from(&tweets))
        }
        (segs, _) => Err(match allowed(segs) {
            Some(allow) => ApiError::Method(allow),
            None => ApiError::NoRoute,
        }),
    }
}

async fn search(app: &App, req: &Request<Incoming>, query: TagQuery) -> ApiResult {
    let page = page_request(req)?;
    let tweets = blocking(app, move |n| n.search(query, page)).await?;
    json(StatusCode::OK, &TweetPage::from(&tweets))
}

/// The methods a known path accepts, for 405 responses.
fn allowed(segs: &[&str]) -> Option<&'static str> {
    Some(match segs {
        [""] | ["app", _] => "GET, HEAD",
        ["health"] | ["feed"] => "GET",
        ["users"] | ["sessions"] | ["tweet"] | ["media"] => "POST",
        ["media", _] => "GET, HEAD",
        ["tweets", _] => "GET, DELETE",
        ["search", "tags"] | ["search", "tags", _] => "GET",
        [_, "profile"] => "GET, PATCH",
        [_, "follow", _] => "POST, DELETE",
        [_, "followers" | "following" | "tweets"] => "GET",
        _ => return None,
    })
}
