//! Stored documents: versioned serde values.
//!
//! Every document is one version byte followed by its JSON encoding. JSON keeps free-form
//! `extra` properties intact, and `#[serde(flatten)] rest` keeps fields written by a newer
//! version of Chirp through a read-modify-write by an older one.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The version byte every document written by this build starts with.
pub const DOC_V1: u8 = 1;

/// Encodes a document with its version byte.
pub fn encode<T: Serialize>(doc: &T) -> Result<Vec<u8>> {
    let mut out = vec![DOC_V1];
    serde_json::to_writer(&mut out, doc).map_err(|e| Error::Corrupt(e.to_string()))?;
    Ok(out)
}

/// Decodes a document, checking its version byte.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&DOC_V1, body)) => {
            serde_json::from_slice(body).map_err(|e| Error::Corrupt(e.to_string()))
        }
        Some((v, _)) => Err(Error::Corrupt(format!("unknown document version {v}"))),
        None => Err(Error::Corrupt("empty document".into())),
    }
}

/// A user's profile as stored in `profiles`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProfileDoc {
    /// User id.
    pub id: u64,
    /// Handle as chosen at sign-up (case kept).
    pub handle: String,
    /// Display name.
    pub display_name: String,
    /// Free-text biography.
    #[serde(default)]
    pub bio: String,
    /// Avatar image URL, empty if none.
    #[serde(default)]
    pub avatar_url: String,
    /// Sign-up time, Unix milliseconds.
    pub created_at_ms: u64,
    /// Free-form properties.
    #[serde(default)]
    pub extra: Map<String, Value>,
    /// Whether the account is suspended (it cannot log in or post).
    #[serde(default)]
    pub suspended: bool,
    /// Fields this build does not know, kept as they are.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// One image attached to a tweet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MediaRef {
    /// Media id.
    pub id: String,
    /// Where the image is served.
    pub url: String,
    /// MIME type.
    pub content_type: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Its description for people who cannot see it (alt text), if the author wrote one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// An uploaded image as stored in `media`; the bytes live in the blob store under `sha256`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MediaDoc {
    /// Media id (minted on the uploader's shard, so it routes like a tweet id).
    pub id: u64,
    /// The user who uploaded it; only they may attach it to a tweet.
    pub owner_id: u64,
    /// MIME type of the served bytes.
    pub content_type: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Size of the served (re-encoded) bytes.
    pub bytes: u64,
    /// Lowercase hex SHA-256 of the served bytes: the blob's name and the ETag.
    pub sha256: String,
    /// Upload time, Unix milliseconds (the grace period of garbage collection counts from it).
    pub created_at_ms: u64,
    /// Its description for people who cannot see it (alt text), copied into the tweets that
    /// attach it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Fields this build does not know, kept as they are.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// A tweet as stored in `tweets`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TweetDoc {
    /// Tweet id.
    pub id: u64,
    /// Author's user id.
    pub author_id: u64,
    /// Author's handle (handles never change, so it is stored with the tweet).
    pub author_handle: String,
    /// NFC-normalized text.
    pub text: String,
    /// Hashtags as written, in order of appearance.
    #[serde(default)]
    pub hashtags: Vec<String>,
    /// Attached images.
    #[serde(default)]
    pub media: Vec<MediaRef>,
    /// Posting time, Unix milliseconds.
    pub created_at_ms: u64,
    /// Free-form metadata.
    #[serde(default)]
    pub extra: Map<String, Value>,
    /// Fields this build does not know, kept as they are.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
    /// The public API's JSON of this tweet, made once by whoever serves it and kept with the
    /// document while it is in memory (the hot-tweet cache holds it with the tweet). Never
    /// stored.
    #[serde(skip)]
    pub encoded: EncodedOnce,
}

/// Bytes computed once from an immutable document and kept with it (see
/// [`TweetDoc::encoded`]). Cloning keeps them; they take no part in equality.
#[derive(Clone, Default)]
pub struct EncodedOnce(std::sync::OnceLock<std::sync::Arc<[u8]>>);

impl EncodedOnce {
    /// The bytes, made by `make` on first use. A failed `make` keeps nothing, so the next
    /// call tries again.
    pub fn get_or_make<E>(
        &self,
        make: impl FnOnce() -> std::result::Result<Vec<u8>, E>,
    ) -> std::result::Result<&[u8], E> {
        if let Some(done) = self.0.get() {
            return Ok(done);
        }
        let made: std::sync::Arc<[u8]> = make()?.into();
        Ok(self.0.get_or_init(|| made))
    }
}

impl PartialEq for EncodedOnce {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for EncodedOnce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.get() {
            Some(b) => write!(f, "EncodedOnce({} bytes)", b.len()),
            None => f.write_str("EncodedOnce(-)"),
        }
    }
}

/// A user's password credential as stored in `auth`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PasswordDoc {
    /// PHC string of the argon2id hash.
    pub phc: String,
    /// The e-mail address the user signed up with, if any (it logs in like the handle; its
    /// row in `handles` points here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// A client application registered through the Mastodon client API, as stored in `auth`
/// under its client id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AppDoc {
    /// The public client id.
    pub client_id: String,
    /// SHA-256 of the client secret, hex (the secret itself is shown once).
    pub secret_sha256: String,
    /// The name the application gave.
    pub name: String,
    /// Where authorization codes go, one per line (`urn:ietf:wg:oauth:2.0:oob` shows them).
    pub redirect_uris: String,
    /// The scopes it asked for, space-separated.
    pub scopes: String,
    /// Its web site, if it gave one.
    #[serde(default)]
    pub website: Option<String>,
    /// Registration time, Unix milliseconds.
    pub created_at_ms: u64,
    /// Fields this build does not know, kept as they are.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// A session token as stored in `auth` under its digest: what authenticating a request reads.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenDoc {
    /// The user the token authenticates.
    pub user_id: u64,
    /// When it was minted, Unix milliseconds.
    pub created_at_ms: u64,
    /// Its row in the per-user session index. Tokens minted before the index existed have
    /// none and are refused (their user logs in again).
    #[serde(default)]
    pub session_id: Option<u64>,
    /// When it last authenticated a request, Unix milliseconds, refreshed at most every
    /// `session_refresh` (0: never recorded).
    #[serde(default)]
    pub last_used_ms: u64,
    /// Fields this build does not know, kept as they are.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// A session as stored in `auth`'s per-user index under (user id, session id): what listing,
/// ending one and revoking all of a user's sessions read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionDoc {
    /// Lowercase hex SHA-256 of the token: where its token row is. Never shown to users.
    pub token_sha256: String,
    /// When it was minted, Unix milliseconds.
    pub created_at_ms: u64,
    /// Kept equal to the token row's `last_used_ms` (both are written in one batch).
    #[serde(default)]
    pub last_used_ms: u64,
    /// Fields this build does not know, kept as they are.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// What a pending fan-out must do, as stored in `outbox`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum FanoutDoc {
    /// Add the tweet to the followers' home feeds.
    Post {
        /// The author.
        author_id: u64,
    },
    /// Remove the tweet from the followers' home feeds.
    Delete {
        /// The author.
        author_id: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let raw = br#"{"id":1,"handle":"a","display_name":"A","created_at_ms":5,"future":{"x":1}}"#;
        let mut bytes = vec![DOC_V1];
        bytes.extend_from_slice(raw);
        let doc: ProfileDoc = decode(&bytes).expect("decodes");
        assert_eq!(doc.rest.get("future"), Some(&serde_json::json!({"x": 1})));
        let again: ProfileDoc = decode(&encode(&doc).expect("encodes")).expect("decodes");
        assert_eq!(again, doc);
    }

    #[test]
    fn bad_versions_are_refused() {
        assert!(matches!(decode::<TokenDoc>(&[]), Err(Error::Corrupt(_))));
        assert!(matches!(
            decode::<TokenDoc>(b"\x09{}"),
            Err(Error::Corrupt(_))
        ));
        assert!(matches!(
            decode::<TokenDoc>(b"\x01{"),
            Err(Error::Corrupt(_))
        ));
    }

    #[test]
    fn media_docs_round_trip() {
        let media = MediaDoc {
            id: 1,
            owner_id: 2,
            content_type: "image/png".into(),
            width: 3,
            height: 4,
            bytes: 5,
            sha256: "ab".repeat(32),
            created_at_ms: 6,
            description: Some("a cat".into()),
            rest: Map::new(),
        };
        let again: MediaDoc = decode(&encode(&media).expect("encodes")).expect("decodes");
        assert_eq!(again, media);
    }

    #[test]
    fn token_docs_of_older_builds_decode() {
        let old: TokenDoc = decode(b"\x01{\"user_id\":3,\"created_at_ms\":4}").expect("decodes");
        assert_eq!((old.session_id, old.last_used_ms), (None, 0));
        let session = SessionDoc {
            token_sha256: "ab".repeat(32),
            created_at_ms: 1,
            last_used_ms: 2,
            rest: Map::new(),
        };
        let again: SessionDoc = decode(&encode(&session).expect("encodes")).expect("decodes");
        assert_eq!(again, session);
    }

    #[test]
    fn fanout_docs_round_trip() {
        let job = FanoutDoc::Delete { author_id: 9 };
        assert_eq!(
            decode::<FanoutDoc>(&encode(&job).expect("encodes")).expect("decodes"),
            job
        );
    }
}
