//! The JSON shapes of the API: ids as strings, times as RFC 3339 UTC.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use chirp_engine::{Page, Profile, Tweet};

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

impl<'a> From<&'a Page<Arc<Tweet>>> for TweetPage<'a> {
    fn from(p: &'a Page<Arc<Tweet>>) -> Self {
        TweetPage {
            tweets: p.items.iter().map(|t| TweetView::from(&**t)).collect(),
            next_cursor: p.next_cursor.as_deref(),
        }
    }
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
