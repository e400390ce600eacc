//! The JSON shapes of the API: ids as strings, times as RFC 3339 UTC.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use chirp_engine::{Page, Profile, Tweet};

/// Formats Unix milliseconds as RFC 3339 UTC with millisecond precision.
pub fn rfc3339(unix_ms: u64) -> String {
    DateTime::<Utc>::from_timestamp_millis(unix_ms as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A profile as the API shows it.
#[derive(Serialize)]
pub struct ProfileView<'a> {
    id: String,
    handle: &'a str,
    display_name: &'a str,
    bio: &'a str,
    avatar_url: Option<&'a str>,
    created_at: String,
    followers_count: u64,
    following_count: u64,
    tweet_count: u64,
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
#[derive(Serialize)]
pub struct MediaView<'a> {
    id: &'a str,
    url: &'a str,
    content_type: &'a str,
    width: u32,
    height: u32,
}

/// A tweet as the API shows it.
#[derive(Serialize)]
pub struct TweetView<'a> {
    id: String,
    author_id: String,
    author_handle: &'a str,
    text: &'a str,
    hashtags: &'a [String],
    media: Vec<MediaView<'a>>,
    created_at: String,
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
#[derive(Serialize)]
pub struct TweetPage<'a> {
    tweets: Vec<TweetView<'a>>,
    next_cursor: Option<&'a str>,
}

impl<'a> From<&'a Page<Arc<Tweet>>> for TweetPage<'a> {
    fn from(p: &'a Page<Arc<Tweet>>) -> Self {
        TweetPage {
            tweets: p.items.iter().map(|t| TweetView::from(&**t)).collect(),
            next_cursor: p.next_cursor.as_deref(),
        }
    }
}

/// `{"users": [...], "next_cursor"}`.
#[derive(Serialize)]
pub struct UserPage<'a> {
    users: Vec<ProfileView<'a>>,
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
