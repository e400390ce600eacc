//! What each fuzz target checks, one function per target of `fuzz/`, so the targets and the
//! corpus replay of the default tests (`tests/fuzz_corpus.rs`) run one copy. Every function
//! takes arbitrary bytes and panics only when an invariant breaks.

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::batch::Entry;
use crate::body::{self, LogInBody, ProfileBody, SignUpBody, TweetBody};
use crate::doc::{
    self, FanoutDoc, MediaDoc, PasswordDoc, ProfileDoc, SessionDoc, TokenDoc, TweetDoc,
};
use crate::error::Error;
use crate::{frame, keys, text};

/// `frame_decode`: a replication frame decodes without panicking, and what decodes
/// re-encodes to exactly the bytes it came from.
pub fn frame_decode(data: &[u8]) {
    if let Ok(Some((f, used))) = frame::decode(data) {
        assert_eq!(f.to_bytes(), &data[..used]);
    }
}

/// `batch_decode`: an oplog entry decodes without panicking, re-encodes to its bytes, and
/// names only known column families.
pub fn batch_decode(data: &[u8]) {
    if let Ok(entry) = Entry::decode(data) {
        assert_eq!(entry.encode(), data);
        assert!(entry.ops.iter().all(|op| !op.cf_name().is_empty()));
    }
}

/// `doc_decode`: the bytes as every stored document kind; what decodes encodes, and decodes
/// again to an equal document.
pub fn doc_decode(data: &[u8]) {
    round_trip::<ProfileDoc>(data);
    round_trip::<TweetDoc>(data);
    round_trip::<MediaDoc>(data);
    round_trip::<PasswordDoc>(data);
    round_trip::<TokenDoc>(data);
    round_trip::<SessionDoc>(data);
    round_trip::<FanoutDoc>(data);
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(data: &[u8]) {
    if let Ok(doc) = doc::decode::<T>(data) {
        let bytes = doc::encode(&doc).expect("a decoded document encodes");
        let again: T = doc::decode(&bytes).expect("an encoded document decodes");
        assert_eq!(again, doc);
    }
}

/// `key_decode`: every key decoder; what decodes re-encodes to the same key, and two keys of
/// one layout sort like what they decode to.
pub fn key_decode(data: &[u8]) {
    one_key(data);
    let (a, b) = data.split_at(data.len() / 2);
    one_key(a);
    one_key(b);
    if let (Some(x), Some(y)) = (keys::decode_id(a), keys::decode_id(b)) {
        assert_eq!(a.cmp(b), x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (keys::decode_pair(a), keys::decode_pair(b)) {
        assert_eq!(a.cmp(b), x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (keys::decode_session_key(a), keys::decode_session_key(b)) {
        assert_eq!(a.cmp(b), x.cmp(&y));
    }
}

fn one_key(key: &[u8]) {
    if let Some(id) = keys::decode_id(key) {
        assert_eq!(keys::id_key(id), key);
    }
    if let Some((owner, item)) = keys::decode_pair(key) {
        assert_eq!(keys::pair_key(owner, item), key);
    }
    if let Some((user, session)) = keys::decode_session_key(key) {
        assert_eq!(keys::session_key(user, session), key);
        assert!(key.starts_with(&keys::sessions_prefix(user)));
        assert!(!keys::is_token_key(key));
        assert_eq!(keys::decode_password_key(key), None);
    }
    if let Some(user) = keys::decode_password_key(key) {
        assert_eq!(keys::password_key(user), key);
        assert!(!keys::is_token_key(key));
    }
    if keys::is_token_key(key) {
        let digest: [u8; 32] = key[1..].try_into().expect("a token key holds 32 bytes");
        assert_eq!(keys::token_key(&digest), key);
    }
    if let Some((user, kind)) = keys::decode_counter(key) {
        for counter in [
            keys::Counter::Followers,
            keys::Counter::Following,
            keys::Counter::Tweets,
        ] {
            if counter as u8 == kind {
                assert_eq!(keys::counter_key(user, counter), key);
            }
        }
    }
    let value = keys::decode_counter_value(key);
    if key.len() == 8 {
        assert_eq!(keys::counter_value(value), key);
    }
    if let Ok(handle) = std::str::from_utf8(key) {
        let k = keys::handle_key(handle);
        assert_eq!(k.len(), handle.len());
        assert_eq!(keys::handle_key(&String::from_utf8_lossy(&k)), k);
    }
}

/// `request_body`: the first byte picks a public API body type, the rest is parsed as it;
/// errors name a field. A tweet's text (and the rest as text, when it is UTF-8) goes through
/// the text rule and hashtag extraction.
pub fn request_body(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => drop(parse::<SignUpBody>(rest)),
        1 => drop(parse::<LogInBody>(rest)),
        2 => drop(parse::<ProfileBody>(rest)),
        _ => {
            if let Some(tweet) = parse::<TweetBody>(rest) {
                tweet_text(&tweet.text);
            }
        }
    }
    if let Ok(raw) = std::str::from_utf8(rest) {
        tweet_text(raw);
    }
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    match body::parse_json::<T>(bytes) {
        Ok(v) => Some(v),
        Err(Error::InvalidField { field, .. }) => {
            assert!(!field.is_empty());
            None
        }
        Err(e) => {
            assert!(matches!(e, Error::MalformedJson(_)), "{e:?}");
            None
        }
    }
}

/// The tweet text rule and hashtag extraction as the engine runs them on a post.
fn tweet_text(raw: &str) {
    let length = text::tweet_length(raw);
    for tag in text::extract_hashtags(raw) {
        assert!(raw.contains(&tag));
    }
    match text::validate_tweet(raw) {
        Ok(normalized) => {
            assert!(length <= text::MAX_TWEET_CHARS);
            assert_eq!(text::tweet_length(&normalized), length);
            assert_eq!(text::validate_tweet(&normalized).as_ref(), Ok(&normalized));
            // The engine stores these and search indexes each by its normalized form: a tag
            // that does not normalize would be stored yet never found.
            for tag in text::extract_hashtags(&normalized) {
                let Some(n) = text::normalize_tag(&tag) else {
                    panic!("extracted hashtag {tag:?} does not normalize");
                };
                assert_eq!(text::normalize_tag(&n).as_ref(), Some(&n), "{tag:?}");
            }
        }
        Err(text::TextError::TooLong(n)) => {
            assert_eq!(n, length);
            assert!(n > text::MAX_TWEET_CHARS);
        }
        Err(_) => {}
    }
}
