//! The whole key schema of a shard: column-family names and every key layout.
//!
//! Integers in keys are big-endian so that byte order is numeric order. Lists that are read
//! newest-first (`user_tweets`, `home`) are stored ascending and iterated in reverse; no key
//! stores an inverted id. Nothing outside this module builds or parses a key by hand.

/// `user_id` → profile document.
pub const CF_PROFILES: &str = "profiles";
/// Lowercase handle → `user_id` (8 bytes, big-endian).
pub const CF_HANDLES: &str = "handles";
/// Credentials (`p` + user id), session-token digests (`t` + SHA-256) and the per-user
/// session index (`s` + user id + session id).
pub const CF_AUTH: &str = "auth";
/// `tweet_id` → tweet document.
pub const CF_TWEETS: &str = "tweets";
/// (`user_id`, `tweet_id`) → empty: the user timeline.
pub const CF_USER_TWEETS: &str = "user_tweets";
/// (`user_id`, `followee_id`) → empty.
pub const CF_FOLLOWING: &str = "following";
/// (`user_id`, `follower_id`) → empty.
pub const CF_FOLLOWERS: &str = "followers";
/// (`user_id`, `tweet_id`) → `author_id`: the materialized home feed.
pub const CF_HOME: &str = "home";
/// (`user_id`, counter kind) → i64 little-endian, updated by the add merge operator.
pub const CF_COUNTERS: &str = "counters";
/// `tweet_id` → pending fan-out job, written with the tweet and removed when fanned out.
pub const CF_OUTBOX: &str = "outbox";
/// LSN → oplog entry: every committed batch, in order (see `batch.rs`).
pub const CF_OPLOG: &str = "oplog";
/// Fixed names → shard metadata (schema version, shard index and count).
pub const CF_META: &str = "meta";
/// `media_id` → media document (owner, type, size, SHA-256 of the blob file).
pub const CF_MEDIA: &str = "media";
/// (`media_id`, `tweet_id`) → empty: which tweets show an image, so unreferenced media can be
/// found and collected.
pub const CF_MEDIA_REFS: &str = "media_refs";

/// Every column family a shard holds, in creation order. Append-only: oplog entries name a
/// column family by its index here.
pub const ALL_CFS: [&str; 14] = [
    CF_PROFILES,
    CF_HANDLES,
    CF_AUTH,
    CF_TWEETS,
    CF_USER_TWEETS,
    CF_FOLLOWING,
    CF_FOLLOWERS,
    CF_HOME,
    CF_COUNTERS,
    CF_OUTBOX,
    CF_OPLOG,
    CF_META,
    CF_MEDIA,
    CF_MEDIA_REFS,
];

/// Column families whose keys are an (id, id) pair and are scanned by the first id.
pub const PAIR_CFS: [&str; 5] = [
    CF_USER_TWEETS,
    CF_FOLLOWING,
    CF_FOLLOWERS,
    CF_HOME,
    CF_MEDIA_REFS,
];

/// `meta` key of the schema version (u32 big-endian).
pub const META_SCHEMA_VERSION: &[u8] = b"schema_version";
/// `meta` key of this shard's index (u32 big-endian).
pub const META_SHARD_INDEX: &[u8] = b"shard_index";
/// `meta` key of the replication epoch this copy writes with (u64 big-endian).
pub const META_EPOCH: &[u8] = b"epoch";
/// `meta` key of the epoch history: (epoch, first LSN written in it) pairs, 16 bytes each,
/// big-endian, oldest first. Absent means `[(1, 1)]`.
pub const META_EPOCHS: &[u8] = b"epochs";
/// `meta` key written by the logged marker entry of a bulk import (Unix ms, u64 big-endian).
pub const META_IMPORT_MARKER: &[u8] = b"import_marker";
/// `meta` key of the number of shards in the cluster (u32 big-endian).
pub const META_SHARD_COUNT: &[u8] = b"shard_count";

const AUTH_PASSWORD: u8 = b'p';
const AUTH_TOKEN: u8 = b't';
const AUTH_SESSION: u8 = b's';
const AUTH_APP: u8 = b'a';

/// The prefix of an e-mail address's row in `handles`. Handles are `[A-Za-z0-9_]` only, so
/// no handle's key starts with it.
pub const EMAIL_PREFIX: &[u8] = b"email:";

/// Key of a single id (profiles, tweets, outbox, media).
pub fn id_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// Decodes an [`id_key`].
pub fn decode_id(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

/// Key of an (owner, item) pair in the pair column families.
pub fn pair_key(owner: u64, item: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&owner.to_be_bytes());
    key[8..].copy_from_slice(&item.to_be_bytes());
    key
}

/// Decodes a [`pair_key`] into (owner, item).
pub fn decode_pair(key: &[u8]) -> Option<(u64, u64)> {
    if key.len() != 16 {
        return None;
    }
    Some((decode_id(&key[..8])?, decode_id(&key[8..])?))
}

/// Key of a handle: its ASCII lowercase form.
pub fn handle_key(handle: &str) -> Vec<u8> {
    handle.to_ascii_lowercase().into_bytes()
}

/// Key of an e-mail address in `handles` (pointing at its user like a handle): the prefix,
/// then the address in ASCII lowercase.
pub fn email_key(email: &str) -> Vec<u8> {
    let mut key = EMAIL_PREFIX.to_vec();
    key.extend_from_slice(email.to_ascii_lowercase().as_bytes());
    key
}

/// The address of an [`email_key`], or None for a handle's key.
pub fn decode_email_key(key: &[u8]) -> Option<&[u8]> {
    key.strip_prefix(EMAIL_PREFIX)
}

/// Key of a registered client application in `auth`, by its client id.
pub fn app_key(client_id: &str) -> Vec<u8> {
    let mut key = vec![AUTH_APP];
    key.extend_from_slice(client_id.as_bytes());
    key
}

/// Key of a user's password credential.
pub fn password_key(user_id: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = AUTH_PASSWORD;
    key[1..].copy_from_slice(&user_id.to_be_bytes());
    key
}

/// Key of a session token, by the SHA-256 digest of the token.
pub fn token_key(digest: &[u8; 32]) -> [u8; 33] {
    let mut key = [0u8; 33];
    key[0] = AUTH_TOKEN;
    key[1..].copy_from_slice(digest);
    key
}

/// Whether an `auth` key is a session token's (rather than a password's).
pub fn is_token_key(key: &[u8]) -> bool {
    key.len() == 33 && key[0] == AUTH_TOKEN
}

/// Key of a user's session in the per-user index: `s`, user id, session id (both
/// big-endian), so one user's sessions are the keys starting with [`sessions_prefix`], oldest
/// id first.
pub fn session_key(user_id: u64, session_id: u64) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[..9].copy_from_slice(&sessions_prefix(user_id));
    key[9..].copy_from_slice(&session_id.to_be_bytes());
    key
}

/// The prefix every [`session_key`] of a user starts with.
pub fn sessions_prefix(user_id: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = AUTH_SESSION;
    key[1..].copy_from_slice(&user_id.to_be_bytes());
    key
}

/// Decodes a [`session_key`] into (user id, session id).
pub fn decode_session_key(key: &[u8]) -> Option<(u64, u64)> {
    match key.split_first() {
        Some((&AUTH_SESSION, rest)) if rest.len() == 16 => {
            Some((decode_id(&rest[..8])?, decode_id(&rest[8..])?))
        }
        _ => None,
    }
}

/// The user of a [`password_key`].
pub fn decode_password_key(key: &[u8]) -> Option<u64> {
    match key.split_first() {
        Some((&AUTH_PASSWORD, id)) => decode_id(id),
        _ => None,
    }
}

/// The counters kept per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Counter {
    /// How many users follow this user.
    Followers = 1,
    /// How many users this user follows.
    Following = 2,
    /// How many live tweets this user has.
    Tweets = 3,
}

/// Key of one counter of a user.
pub fn counter_key(user_id: u64, counter: Counter) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[..8].copy_from_slice(&user_id.to_be_bytes());
    key[8] = counter as u8;
    key
}

/// Decodes a [`counter_key`] into the user id and the raw counter kind.
pub fn decode_counter(key: &[u8]) -> Option<(u64, u8)> {
    if key.len() != 9 {
        return None;
    }
    Some((decode_id(&key[..8])?, key[8]))
}

/// Encodes a counter delta or value (little-endian i64: values are not sorted).
pub fn counter_value(v: i64) -> [u8; 8] {
    v.to_le_bytes()
}

/// Decodes a counter value; malformed values count as zero rather than failing a read.
pub fn decode_counter_value(v: &[u8]) -> i64 {
    v.try_into().map(i64::from_le_bytes).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_round_trip() {
        for (a, b) in [(0, 0), (1, u64::MAX), (u64::MAX, 7), (42, 43)] {
            assert_eq!(decode_pair(&pair_key(a, b)), Some((a, b)));
        }
        assert_eq!(decode_pair(&[1, 2, 3]), None);
    }

    #[test]
    fn id_round_trip() {
        for id in [0, 1, 255, 256, u64::MAX] {
            assert_eq!(decode_id(&id_key(id)), Some(id));
        }
    }

    #[test]
    fn pair_keys_sort_by_owner_then_item() {
        let mut pairs = vec![
            (2u64, 1u64),
            (1, 300),
            (1, 2),
            (256, 0),
            (1, u64::MAX),
            (0, 5),
        ];
        let mut keys: Vec<[u8; 16]> = pairs.iter().map(|&(a, b)| pair_key(a, b)).collect();
        keys.sort();
        pairs.sort();
        let decoded: Vec<(u64, u64)> = keys.iter().filter_map(|k| decode_pair(k)).collect();
        assert_eq!(decoded, pairs);
    }

    #[test]
    fn id_keys_sort_numerically() {
        let mut ids = vec![5u64, 1 << 40, 255, 256, 0, u64::MAX];
        let mut keys: Vec<[u8; 8]> = ids.iter().map(|&i| id_key(i)).collect();
        keys.sort();
        ids.sort();
        assert_eq!(
            keys.iter().filter_map(|k| decode_id(k)).collect::<Vec<_>>(),
            ids
        );
    }

    #[test]
    fn counter_keys_group_by_user() {
        let a = counter_key(1, Counter::Tweets);
        let b = counter_key(2, Counter::Followers);
        assert!(a < b);
        assert_eq!(decode_counter(&a), Some((1, Counter::Tweets as u8)));
        assert_eq!(decode_counter_value(&counter_value(-3)), -3);
        assert_eq!(decode_counter_value(b"bad"), 0);
    }

    #[test]
    fn auth_keys_do_not_collide() {
        assert_ne!(password_key(1)[0], token_key(&[0; 32])[0]);
        assert!(is_token_key(&token_key(&[7; 32])));
        assert!(!is_token_key(&password_key(7)));
        assert_eq!(decode_password_key(&password_key(7)), Some(7));
        assert_eq!(decode_password_key(&token_key(&[7; 32])), None);
        assert_eq!(handle_key("Alice_1"), b"alice_1".to_vec());
        // An application's row is none of the per-user rows, whatever its client id.
        for id in ["", "t", "abc", &"x".repeat(32)] {
            let key = app_key(id);
            assert!(!is_token_key(&key));
            assert_eq!(decode_password_key(&key), None);
            assert_eq!(decode_session_key(&key), None);
        }
    }

    #[test]
    fn email_rows_are_no_handle_rows() {
        let key = email_key("Ada@Example.COM");
        assert_eq!(decode_email_key(&key), Some(&b"ada@example.com"[..]));
        // The prefix holds a character no handle has.
        assert!(EMAIL_PREFIX
            .iter()
            .any(|b| !b.is_ascii_alphanumeric() && *b != b'_'));
        assert_eq!(decode_email_key(&handle_key("email_x")), None);
    }

    #[test]
    fn session_keys_round_trip_and_group_by_user() {
        for (u, s) in [(0, 0), (1, u64::MAX), (u64::MAX, 7), (256, 255)] {
            let key = session_key(u, s);
            assert_eq!(decode_session_key(&key), Some((u, s)));
            assert!(key.starts_with(&sessions_prefix(u)));
        }
        assert_eq!(decode_session_key(&password_key(1)), None);
        assert_eq!(decode_session_key(&token_key(&[0; 32])), None);
        assert_eq!(decode_session_key(&session_key(1, 2)[..16]), None);
        // None of the other auth rows can be mistaken for a session or fall inside a user's
        // prefix.
        assert!(!is_token_key(&session_key(1, 2)));
        assert_eq!(decode_password_key(&session_key(1, 2)), None);
        let mut pairs = vec![(2u64, 1u64), (1, 300), (1, 2), (256, 0), (1, u64::MAX)];
        let mut keys: Vec<[u8; 17]> = pairs.iter().map(|&(u, s)| session_key(u, s)).collect();
        keys.sort();
        pairs.sort();
        let decoded: Vec<(u64, u64)> = keys.iter().filter_map(|k| decode_session_key(k)).collect();
        assert_eq!(decoded, pairs);
        let of_one: Vec<&[u8; 17]> = keys
            .iter()
            .filter(|k| k.starts_with(&sessions_prefix(1)))
            .collect();
        assert_eq!(of_one.len(), 3);
    }

    #[test]
    fn media_refs_group_by_media() {
        // A prefix scan of one media id finds exactly the tweets that show it.
        let mut keys = [pair_key(7, 9), pair_key(6, u64::MAX), pair_key(7, 1)];
        keys.sort();
        assert_eq!(decode_pair(&keys[0]), Some((6, u64::MAX)));
        assert_eq!(decode_pair(&keys[1]), Some((7, 1)));
        assert!(PAIR_CFS.contains(&CF_MEDIA_REFS));
        assert!(ALL_CFS.contains(&CF_MEDIA) && ALL_CFS.contains(&CF_MEDIA_REFS));
    }

    #[test]
    fn cf_names_are_unique() {
        let mut names = ALL_CFS.to_vec();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ALL_CFS.len());
    }
}
