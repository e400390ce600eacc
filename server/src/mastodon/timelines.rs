//! Timelines (home, public, hashtag, an account's statuses) with Mastodon's paging, and
//! `GET /api/v2/search`.
//!
//! Paging as Mastodon does it, over Chirp's newest-first lists: `max_id` returns statuses
//! older than it; `since_id` the newest statuses newer than it; `min_id` the statuses just
//! newer than it (the page adjacent to it, for reading forward); all newest first. The
//! answer's `Link` header names the next (older) page first, then the previous (newer) one,
//! and is left out of an empty page.

use std::collections::VecDeque;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::Request;

use chirp_engine::{Error as EngineError, Node, Page, PageRequest, TagQuery, Tweet};

use super::entities::{self, Base};
use super::params::Params;
use super::statuses::{authors, statuses};
use super::{base, json_ok};
use crate::api::{authenticate, read};
use crate::http::ApiResult;
use crate::routes::App;

/// Default page length.
const DEFAULT_LIMIT: usize = 20;
/// Longest page, as Mastodon allows.
pub const MAX_LIMIT: usize = 40;
/// Most statuses a `min_id` page walks past to reach its end (each one read whole): beyond
/// this the page holds the oldest statuses walked, not the ones adjacent to `min_id`. A home
/// feed keeps about 800 rows, so only public, hashtag and account timelines can reach it.
const MAX_WALK: usize = 1_000;
/// Rows read per step of a walk.
const WALK_STEP: usize = 100;

/// The `limit` parameter: default 20, larger values capped at 40, as Mastodon does.
pub fn limit(p: &Params) -> ApiResult<usize> {
    Ok(p.u64("limit")?
        .map(|n| (n as usize).clamp(1, MAX_LIMIT))
        .unwrap_or(DEFAULT_LIMIT))
}

/// A page request in Mastodon's terms.
#[derive(Debug, Clone, Copy)]
struct Window {
    max_id: Option<u64>,
    since_id: Option<u64>,
    min_id: Option<u64>,
    limit: usize,
}

impl Window {
    fn parse(p: &Params) -> ApiResult<Window> {
        Ok(Window {
            max_id: p.u64("max_id")?,
            since_id: p.u64("since_id")?,
            min_id: p.u64("min_id")?,
            limit: limit(p)?,
        })
    }
}

/// A newest-first list, read a page at a time.
type Fetch = dyn Fn(&Node, PageRequest) -> chirp_engine::Result<Page<Arc<Tweet>>> + Send + Sync;

/// The statuses of a window of a newest-first list.
fn window(node: &Node, w: Window, fetch: &Fetch) -> chirp_engine::Result<Vec<Arc<Tweet>>> {
    let floor = w.min_id.max(w.since_id);
    let mut after = w.max_id;
    let mut out: VecDeque<Arc<Tweet>> = VecDeque::with_capacity(w.limit + 1);
    let mut walked = 0;
    loop {
        let step = if w.min_id.is_some() {
            WALK_STEP
        } else {
            w.limit - out.len()
        };
        let page = fetch(node, PageRequest { after, limit: step })?;
        let mut done = page.next_cursor.is_none();
        for t in &page.items {
            if floor.is_some_and(|f| t.id <= f) {
                done = true;
                break;
            }
            out.push_back(Arc::clone(t));
            if w.min_id.is_some() {
                // Keep the oldest: the page adjacent to `min_id`.
                if out.len() > w.limit {
                    out.pop_front();
                }
            } else if out.len() == w.limit {
                done = true;
                break;
            }
        }
        walked += page.items.len();
        match page.items.last() {
            Some(last) if !done && walked < MAX_WALK => after = Some(last.id),
            _ => break,
        }
    }
    Ok(out.into())
}

/// This request's URL with its paging parameters replaced.
pub fn page_url(base: &Base, req: &Request<Incoming>, set: &[(&str, u64)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(q) = req.uri().query() {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            if !matches!(k.as_ref(), "max_id" | "min_id" | "since_id") {
                query.append_pair(&k, &v);
            }
        }
    }
    for (k, v) in set {
        query.append_pair(k, &v.to_string());
    }
    format!("{}{}?{}", base.origin, req.uri().path(), query.finish())
}

/// Answers a page of statuses with its `Link` header.
async fn answer(app: &App, req: &Request<Incoming>, tweets: Vec<Arc<Tweet>>) -> ApiResult {
    let b = base(req);
    let authors = authors(app, &tweets).await?;
    let mut resp = json_ok(&statuses(&b, &tweets, &authors))?;
    if let (Some(first), Some(last)) = (tweets.first(), tweets.last()) {
        let next = page_url(&b, req, &[("max_id", last.id)]);
        let prev = page_url(&b, req, &[("min_id", first.id)]);
        if let Ok(v) =
            HeaderValue::from_str(&format!("<{next}>; rel=\"next\", <{prev}>; rel=\"prev\""))
        {
            resp.headers_mut().insert(hyper::header::LINK, v);
        }
    }
    Ok(resp)
}

/// Reads a window of a list.
async fn windowed(
    app: &App,
    req: &Request<Incoming>,
    fetch: Arc<Fetch>,
) -> ApiResult<Vec<Arc<Tweet>>> {
    let w = Window::parse(&Params::query(req)?)?;
    read(app, move |n| window(n, w, &*fetch)).await
}

/// `GET /api/v1/timelines/home`.
pub async fn home(app: &App, req: &Request<Incoming>) -> ApiResult {
    let me = authenticate(app, req).await?;
    let tweets = windowed(app, req, Arc::new(move |n: &Node, p| n.home_feed(me, p))).await?;
    answer(app, req, tweets).await
}

/// `GET /api/v1/timelines/public`: everyone's statuses (Chirp has one server, so `local`
/// and `remote` change nothing but `remote=true`, which has none).
pub async fn public(app: &App, req: &Request<Incoming>) -> ApiResult {
    let p = Params::query(req)?;
    if p.bool("remote")? == Some(true) || p.bool("only_media")? == Some(true) {
        return answer(app, req, Vec::new()).await;
    }
    let tweets = windowed(app, req, Arc::new(|n: &Node, p| n.public_timeline(p))).await?;
    answer(app, req, tweets).await
}

/// `GET /api/v1/timelines/tag/{hashtag}` (no token needed). A name that is no hashtag has no
/// statuses.
pub async fn tag(app: &App, req: &Request<Incoming>, hashtag: &str) -> ApiResult {
    let Some(tag) = chirp_codec::text::normalize_tag(hashtag) else {
        return answer(app, req, Vec::new()).await;
    };
    let tweets = windowed(
        app,
        req,
        Arc::new(move |n: &Node, p| n.search(TagQuery::Tag(tag.clone()), p)),
    )
    .await?;
    answer(app, req, tweets).await
}

/// `GET /api/v1/accounts/{id}/statuses`. Chirp has no pins or replies and every status is
/// the author's own, so `pinned=true` is empty and the `exclude_*` flags change nothing.
pub async fn account(app: &App, req: &Request<Incoming>, raw: &str) -> ApiResult {
    let user = super::accounts::account_id(app, raw).await?;
    let p = Params::query(req)?;
    if p.bool("pinned")? == Some(true) {
        return answer(app, req, Vec::new()).await;
    }
    let only_media = p.bool("only_media")? == Some(true);
    let tagged = match p.str("tagged")? {
        Some(t) => Some(
            chirp_codec::text::normalize_tag(&t)
                .ok_or_else(|| EngineError::invalid("tagged", "is not a hashtag"))?,
        ),
        None => None,
    };
    let tweets = windowed(
        app,
        req,
        Arc::new(move |n: &Node, p| n.user_timeline(user, p)),
    )
    .await?
    .into_iter()
    .filter(|t| !only_media || !t.media.is_empty())
    .filter(|t| {
        tagged.as_ref().is_none_or(|tag| {
            t.hashtags
                .iter()
                .any(|h| chirp_codec::text::normalize_tag(h).as_deref() == Some(tag))
        })
    })
    .collect();
    answer(app, req, tweets).await
}

/// `GET /api/v2/search`: accounts by handle, hashtags in use by prefix, statuses by hashtag;
/// `type` narrows it, `limit` and `offset` page each list.
pub async fn search(app: &App, req: &Request<Incoming>) -> ApiResult {
    let p = Params::query(req)?;
    let q = p.required("q")?;
    let kind = p.str("type")?.unwrap_or_default();
    if !matches!(kind.as_str(), "" | "accounts" | "hashtags" | "statuses") {
        return Err(EngineError::invalid("type", "must be accounts, hashtags or statuses").into());
    }
    let limit = limit(&p)?;
    let offset = p.u64("offset")?.unwrap_or(0) as usize;
    let wants = |k: &str| kind.is_empty() || kind == k;
    let b = base(req);
    let account = match wants("accounts") && offset == 0 {
        true => super::accounts::by_handle(app, &b, &q).await?,
        false => None,
    };
    let names = match wants("hashtags") {
        true => {
            let (prefix, want) = (q.clone(), offset + limit);
            read(app, move |n| n.hashtags_with_prefix(&prefix, want)).await?
        }
        false => Vec::new(),
    };
    let mut page: Vec<Arc<Tweet>> = Vec::new();
    let tag = chirp_codec::text::normalize_tag(q.trim());
    if let (true, Some(tag)) = (wants("statuses"), tag) {
        let want = (offset + limit).min(MAX_WALK);
        let found = read(app, move |n| {
            n.search(
                TagQuery::Tag(tag.clone()),
                PageRequest {
                    after: None,
                    limit: want.min(chirp_engine::model::MAX_LIMIT),
                },
            )
        })
        .await?;
        page = found.items.into_iter().skip(offset).take(limit).collect();
    }
    let authors = authors(app, &page).await?;
    json_ok(&Results {
        accounts: account.iter().map(|a| entities::account(&b, a)).collect(),
        statuses: statuses(&b, &page, &authors),
        hashtags: names
            .iter()
            .skip(offset)
            .map(|name| entities::tag(&b, name))
            .collect(),
    })
}

/// The answer of `GET /api/v2/search`.
#[derive(serde::Serialize)]
struct Results<'a> {
    accounts: Vec<entities::Account<'a>>,
    statuses: Vec<entities::Status<'a>>,
    hashtags: Vec<entities::Tag<'a>>,
}
