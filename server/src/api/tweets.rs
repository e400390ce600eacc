//! Posting, reading and deleting tweets; the home feed and user timelines.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use chirp_codec::body::TweetBody;
use chirp_engine::{Error as EngineError, NewTweet};

use super::{
    authenticate, authenticate_writer, blocking, body, page_request, param, read, resolve,
    PageParams,
};
use crate::http::{empty, ApiError, ApiResult, Problem};
use crate::routes::App;
use crate::views::{self, TweetPage, TweetView};

fn tweet_id(raw: &str) -> ApiResult<u64> {
    raw.parse()
        .map_err(|_| ApiError::Engine(EngineError::NotFound("tweet")))
}

/// Post a tweet as the authenticated user.
#[utoipa::path(post, path = "/tweet", tag = "tweets", request_body = TweetBody,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The tweet; `Location` names it", body = TweetView, links(
            ("GetTweet" = (operation_id = "get_tweet", parameters(("id" = "$response.body#/id")))),
            ("DeleteTweet" = (operation_id = "delete_tweet", parameters(("id" = "$response.body#/id")))),
            ("AuthorTweets" = (operation_id = "user_tweets", parameters(("userId" = "$response.body#/author_id")))),
            ("FollowAuthor" = (operation_id = "follow", parameters(("id" = "$response.body#/author_id")))),
            ("Feed" = (operation_id = "feed")),
        )),
        (status = 429, description = "Over a rate limit; `Retry-After` says when to retry", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn post_tweet(app: &App, req: Request<Incoming>) -> ApiResult {
    let me = authenticate_writer(app, &req).await?;
    let b: TweetBody = body(req).await?;
    let new = NewTweet {
        text: b.text,
        media: b.media,
        extra: b.extra,
    };
    let tweet = blocking(app, move |n| n.post_tweet(me, new)).await?;
    let mut resp = views::tweet(StatusCode::CREATED, &tweet)?;
    if let Ok(loc) = format!("/tweets/{}", tweet.id).parse() {
        resp.headers_mut().insert(hyper::header::LOCATION, loc);
    }
    Ok(resp)
}

/// The authenticated user's home feed: their tweets and those of everyone they follow.
#[utoipa::path(get, path = "/feed", tag = "tweets", params(PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of the feed, newest first", body = TweetPage),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad `limit` or `cursor`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn feed(app: &App, req: Request<Incoming>) -> ApiResult {
    let me = authenticate(app, &req).await?;
    let page = page_request(&req)?;
    let feed = read(app, move |n| n.home_feed(me, page)).await?;
    views::tweet_page(&feed)
}

/// One tweet.
#[utoipa::path(get, path = "/tweets/{id}", tag = "tweets",
    params(("id" = String, Path, description = "Tweet id")),
    responses(
        (status = 200, description = "The tweet", body = TweetView),
        (status = 404, description = "Unknown or deleted tweet", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_tweet(app: &App, params: &[String]) -> ApiResult {
    let id = tweet_id(param(params, 0))?;
    let tweet = read(app, move |n| n.tweet(id)).await?;
    views::tweet(StatusCode::OK, &tweet)
}

/// Delete your own tweet; it leaves every feed.
#[utoipa::path(delete, path = "/tweets/{id}", tag = "tweets",
    params(("id" = String, Path, description = "Tweet id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 429, description = "Over a rate limit; `Retry-After` says when to retry", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not your tweet", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown tweet", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_tweet(app: &App, req: Request<Incoming>, params: &[String]) -> ApiResult {
    let me = authenticate_writer(app, &req).await?;
    let id = tweet_id(param(params, 0))?;
    blocking(app, move |n| n.delete_tweet(me, id)).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// A user's tweets, newest first.
#[utoipa::path(get, path = "/{userId}/tweets", tag = "tweets",
    params(("userId" = String, Path, description = "Numeric user id or `@handle`"), PageParams),
    responses(
        (status = 200, description = "A page of the timeline, newest first", body = TweetPage),
        (status = 404, description = "Unknown user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad `limit` or `cursor`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn user_tweets(app: &App, req: Request<Incoming>, params: &[String]) -> ApiResult {
    let user = resolve(app, param(params, 0)).await?;
    let page = page_request(&req)?;
    let tweets = read(app, move |n| n.user_timeline(user, page)).await?;
    views::tweet_page(&tweets)
}
