//! The JSON shapes of the API: ids as strings, times as RFC 3339 UTC.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use chirp_engine::{Error as EngineError, Page, Profile, Tweet};
use hyper::StatusCode;

use crate::http::{bytes_response, ApiResult};

/// Formats Unix milliseconds as RFC 3339 UTC with millisecond precision.
pub fn rfc3339(unix_ms: u64) -> String {
    DateTime::<Utc>::from_timestamp_millis(unix_ms as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A profile as the API shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = Profile)]
pub struct ProfileView<'a> {
    /// User id (a 64-bit integer as a string).
    #[schema(value_type = String, example = "1234567890")]
    id: String,
    /// Handle, 1–15 of `A-Z a-z 0-9 _`, unique ignoring case.
    #[schema(value_type = String)]
    handle: &'a str,
    /// Display name, 1–50 characters.
    #[schema(value_type = String)]
    display_name: &'a str,
    /// Biography, up to 160 characters.
    #[schema(value_type = String)]
    bio: &'a str,
    /// Avatar URL, null when unset.
    #[schema(value_type = Option<String>)]
    avatar_url: Option<&'a str>,
    /// Sign-up time, RFC 3339 UTC.
    #[schema(value_type = String, format = DateTime)]
    created_at: String,
    /// Followers.
    followers_count: u64,
    /// Followees.
    following_count: u64,
    /// Live tweets.
    tweet_count: u64,
    /// Free-form properties.
    #[schema(value_type = Object)]
    extra: &'a Map<String, Value>,
}

impl<'a> From<&'a Profile> for ProfileView<'a> {
    fn from(p: &'a Profile) -> Self {
        ProfileView {
            id: p.id.to_string(),
            handle: &p.handle,
            display_name: &p.display_name,
            bio: &p.bio,
            avatar_url: (!p.avatar_url.is_empty()).then_some(p.avatar_url.as_str()),
            created_at: rfc3339(p.created_at_ms),
            followers_count: p.followers_count,
            following_count: p.following_count,
            tweet_count: p.tweet_count,
            extra: &p.extra,
        }
    }
}

/// An image on a tweet as the API shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = Media)]
pub struct MediaView<'a> {
    /// Media id.
    #[schema(value_type = String)]
    id: &'a str,
    /// Where the image is served.
    #[schema(value_type = String)]
    url: &'a str,
    /// MIME type.
    #[schema(value_type = String)]
    content_type: &'a str,
    /// Width in pixels.
    width: u32,
    /// Height in pixels.
    height: u32,
}

/// A tweet as the API shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = Tweet)]
pub struct TweetView<'a> {
    /// Tweet id (a 64-bit time-ordered integer as a string; larger is newer).
    #[schema(value_type = String)]
    id: String,
    /// Author's user id.
    #[schema(value_type = String)]
    author_id: String,
    /// Author's handle.
    #[schema(value_type = String)]
    author_handle: &'a str,
    /// NFC-normalized text, 1–140 characters by twitter-text's rule.
    #[schema(value_type = String)]
    text: &'a str,
    /// Hashtags as written, in order of appearance.
    #[schema(value_type = Vec<String>)]
    hashtags: &'a [String],
    /// Attached images.
    media: Vec<MediaView<'a>>,
    /// Posting time, RFC 3339 UTC.
    #[schema(value_type = String, format = DateTime)]
    created_at: String,
    /// Free-form metadata.
    #[schema(value_type = Object)]
    extra: &'a Map<String, Value>,
}

impl<'a> From<&'a Tweet> for TweetView<'a> {
    fn from(t: &'a Tweet) -> Self {
        TweetView {
            id: t.id.to_string(),
            author_id: t.author_id.to_string(),
            author_handle: &t.author_handle,
            text: &t.text,
            hashtags: &t.hashtags,
            media: t
                .media
                .iter()
                .map(|m| MediaView {
                    id: &m.id,
                    url: &m.url,
                    content_type: &m.content_type,
                    width: m.width,
                    height: m.height,
                })
                .collect(),
            created_at: rfc3339(t.created_at_ms),
            extra: &t.extra,
        }
    }
}

/// `{"tweets": [...], "next_cursor"}`.
#[derive(Serialize, ToSchema)]
pub struct TweetPage<'a> {
    /// Newest first.
    tweets: Vec<TweetView<'a>>,
    /// Cursor of the next page; null on the last page.
    #[schema(value_type = Option<String>)]
    next_cursor: Option<&'a str>,
}

/// Built only by the test that checks [`tweet_page`]'s bytes against it: pages are assembled
/// from each tweet's kept encoding instead.
#[cfg(test)]
impl<'a> From<&'a Page<Arc<Tweet>>> for TweetPage<'a> {
    fn from(p: &'a Page<Arc<Tweet>>) -> Self {
        TweetPage {
            tweets: p.items.iter().map(|t| TweetView::from(&**t)).collect(),
            next_cursor: p.next_cursor.as_deref(),
        }
    }
}

fn encoding_failed(e: serde_json::Error) -> EngineError {
    EngineError::Corrupt(format!("response encoding: {e}"))
}

/// A tweet's JSON ([`TweetView`]), encoded on first use and kept with the document, so a
/// tweet held by the hot-tweet cache is encoded once however many pages show it.
pub fn tweet_json(t: &Tweet) -> Result<&[u8], EngineError> {
    t.encoded
        .get_or_make(|| serde_json::to_vec(&TweetView::from(t)))
        .map_err(encoding_failed)
}

/// A JSON response of one tweet.
pub fn tweet(status: StatusCode, t: &Tweet) -> ApiResult {
    Ok(bytes_response(
        status,
        "application/json",
        tweet_json(t)?.to_vec(),
    ))
}

/// A JSON response of a page of tweets ([`TweetPage`]), assembled from the tweets' kept
/// encodings.
pub fn tweet_page(p: &Page<Arc<Tweet>>) -> ApiResult {
    let mut out = Vec::with_capacity(48 + p.items.len() * 512);
    out.extend_from_slice(b"{\"tweets\":[");
    for (i, t) in p.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(tweet_json(t)?);
    }
    out.extend_from_slice(b"],\"next_cursor\":");
    serde_json::to_writer(&mut out, &p.next_cursor).map_err(encoding_failed)?;
    out.push(b'}');
    Ok(bytes_response(StatusCode::OK, "application/json", out))
}

/// `{"users": [...], "next_cursor"}`.
#[derive(Serialize, ToSchema)]
pub struct UserPage<'a> {
    /// By ascending user id.
    users: Vec<ProfileView<'a>>,
    /// Cursor of the next page; null on the last page.
    #[schema(value_type = Option<String>)]
    next_cursor: Option<&'a str>,
}

impl<'a> From<&'a Page<Profile>> for UserPage<'a> {
    fn from(p: &'a Page<Profile>) -> Self {
        UserPage {
            users: p.items.iter().map(ProfileView::from).collect(),
            next_cursor: p.next_cursor.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chirp_engine::model::MediaRef;
    use http_body_util::BodyExt;

    fn tweet(id: u64, text: &str) -> Arc<Tweet> {
        let mut extra = Map::new();
        extra.insert("lang".into(), Value::from("fr \"quoted\" \u{1F600}"));
        Arc::new(Tweet {
            id,
            author_id: 77,
            author_handle: "alice".into(),
            text: text.into(),
            hashtags: vec!["rust".into()],
            media: vec![MediaRef {
                id: "m1".into(),
                url: "/media/m1".into(),
                content_type: "image/png".into(),
                width: 2,
                height: 3,
                description: Some("alt".into()),
            }],
            created_at_ms: 1_700_000_000_123,
            extra,
            rest: Map::new(),
            encoded: Default::default(),
        })
    }

    async fn body(resp: ApiResult) -> Vec<u8> {
        let resp = resp.expect("response");
        assert_eq!(resp.headers()["content-type"], "application/json");
        resp.into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec()
    }

    #[tokio::test]
    async fn pages_assembled_from_kept_encodings_are_the_serialized_page() {
        let items = vec![
            tweet(3, "caf\u{e9} <b>&</b> \"x\"\n\t#rust"),
            tweet(2, ""),
            tweet(1, "\u{1F426} chirp"),
        ];
        for cursor in [None, Some("c2".to_string())] {
            let page = Page {
                items: items.clone(),
                next_cursor: cursor,
            };
            let want = serde_json::to_vec(&TweetPage::from(&page)).expect("serialize");
            // Twice: the first call encodes each tweet, the second uses what it kept.
            assert_eq!(body(tweet_page(&page)).await, want);
            assert_eq!(body(tweet_page(&page)).await, want);
        }
        let one = &items[0];
        let want = serde_json::to_vec(&TweetView::from(&**one)).expect("serialize");
        assert_eq!(body(super::tweet(StatusCode::OK, one)).await, want);
        assert_eq!(tweet_json(one).expect("kept"), want.as_slice());
    }
}
