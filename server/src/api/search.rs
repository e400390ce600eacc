//! Hashtag search.

use hyper::body::Incoming;
use hyper::Request;
use serde::Deserialize;
use utoipa::IntoParams;

use chirp_engine::{Error as EngineError, TagQuery};

use super::{page_request, param, read, PageParams};
use crate::http::{query_param, ApiResult, Problem};
use crate::routes::App;
use crate::views::{self, TweetPage};

/// The boolean forms of a tag search; exactly one is given.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct TagSetParams {
    /// Comma-separated hashtags a tweet must all carry.
    all: Option<String>,
    /// Comma-separated hashtags a tweet must carry at least one of.
    any: Option<String>,
}

async fn search(app: &App, req: &Request<Incoming>, query: TagQuery) -> ApiResult {
    let page = page_request(req)?;
    let tweets = read(app, move |n| n.search(query.clone(), page)).await?;
    views::tweet_page(&tweets)
}

/// Tweets carrying a hashtag, newest first (`#` optional, case-insensitive).
#[utoipa::path(get, path = "/search/tags/{hashtag}", tag = "search",
    params(("hashtag" = String, Path, description = "The tag, with or without `#` (URL-encoded)"), PageParams),
    responses(
        (status = 200, description = "A page of tweets, newest first", body = TweetPage),
        (status = 422, description = "Not a hashtag, or bad `limit`/`cursor`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn by_tag(app: &App, req: Request<Incoming>, params: &[String]) -> ApiResult {
    let query = TagQuery::Tag(param(params, 0).to_owned());
    search(app, &req, query).await
}

/// Tweets carrying all (`?all=`) or any (`?any=`) of several hashtags, newest first.
#[utoipa::path(get, path = "/search/tags", tag = "search",
    params(TagSetParams, PageParams),
    responses(
        (status = 200, description = "A page of tweets, newest first", body = TweetPage),
        (status = 422, description = "Neither or both of `all` and `any`, a bad tag, or bad `limit`/`cursor`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn by_tags(app: &App, req: Request<Incoming>) -> ApiResult {
    let q = req.uri().query();
    let split = |s: String| s.split(',').map(str::to_owned).collect::<Vec<_>>();
    let query = match (query_param(q, "all"), query_param(q, "any")) {
        (Some(all), None) => TagQuery::All(split(all)),
        (None, Some(any)) => TagQuery::Any(split(any)),
        _ => {
            return Err(EngineError::invalid(
                "all",
                "give exactly one of ?all=a,b or ?any=a,b (or use /search/tags/{hashtag})",
            )
            .into())
        }
    };
    search(app, &req, query).await
}
