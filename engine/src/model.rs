//! What the domain layer hands to its callers: plain values, no storage types.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

pub use crate::doc::{MediaRef, TweetDoc as Tweet};

/// Default page size.
pub const DEFAULT_LIMIT: usize = 20;
/// Largest page size.
pub const MAX_LIMIT: usize = 100;

/// A profile with its counters.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    /// User id.
    pub id: u64,
    /// Handle.
    pub handle: String,
    /// Display name.
    pub display_name: String,
    /// Biography.
    pub bio: String,
    /// Avatar URL (empty if none).
    pub avatar_url: String,
    /// Sign-up time, Unix milliseconds.
    pub created_at_ms: u64,
    /// Followers.
    pub followers_count: u64,
    /// Followees.
    pub following_count: u64,
    /// Live tweets.
    pub tweet_count: u64,
    /// Free-form properties.
    pub extra: Map<String, Value>,
    /// Whether the account is suspended (operators only; the public API does not show it).
    pub suspended: bool,
}

/// A page of a list and the cursor of the next one (None on the last page).
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, in list order.
    pub items: Vec<T>,
    /// Opaque cursor for the next page.
    pub next_cursor: Option<String>,
}

/// Where a page starts and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// The id the previous page ended at (exclusive), if any.
    pub after: Option<u64>,
    /// Items wanted.
    pub limit: usize,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            after: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

impl PageRequest {
    /// Parses the `limit` and `cursor` query parameters.
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<PageRequest> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(s) => match s.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(Error::invalid(
                        "limit",
                        format!("must be an integer from 1 to {MAX_LIMIT}"),
                    ))
                }
            },
        };
        let after = match cursor {
            None | Some("") => None,
            Some(c) => Some(decode_cursor(c)?),
        };
        Ok(PageRequest { after, limit })
    }
}

/// Encodes the id a page ended at as an opaque cursor.
pub fn encode_cursor(id: u64) -> String {
    URL_SAFE_NO_PAD.encode(id.to_be_bytes())
}

fn decode_cursor(cursor: &str) -> Result<u64> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| Error::invalid("cursor", "is not a cursor this server issued"))
}

/// Builds a page from up to `limit + 1` items: the extra one only says another page exists.
pub(crate) fn page_of<T>(mut items: Vec<T>, limit: usize, id: impl Fn(&T) -> u64) -> Page<T> {
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|t| encode_cursor(id(t)))
    } else {
        None
    };
    Page { items, next_cursor }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        for id in [0, 1, u64::MAX, 1 << 40] {
            let page = PageRequest::parse(None, Some(&encode_cursor(id))).expect("parses");
            assert_eq!(page.after, Some(id));
        }
    }

    #[test]
    fn bad_page_parameters_name_the_field() {
        for (limit, cursor, field) in [
            (Some("0"), None, "limit"),
            (Some("101"), None, "limit"),
            (Some("x"), None, "limit"),
            (None, Some("!!"), "cursor"),
            (None, Some("AAAA"), "cursor"),
        ] {
            let err = PageRequest::parse(limit, cursor).expect_err("rejects");
            assert!(matches!(err, Error::Invalid { field: f, .. } if f == field));
        }
        assert_eq!(PageRequest::parse(None, None).expect("parses").limit, 20);
    }

    #[test]
    fn pages_know_when_more_follow() {
        let page = page_of(vec![5u64, 4, 3], 2, |v| *v);
        assert_eq!(page.items, vec![5, 4]);
        assert_eq!(page.next_cursor, Some(encode_cursor(4)));
        assert_eq!(page_of(vec![5u64, 4], 2, |v| *v).next_cursor, None);
    }
}
