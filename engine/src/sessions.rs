//! Sessions: bearer tokens, the per-user session index, and sliding expiry.
//!
//! A token is `<user_id>.<base64url of 32 random bytes>`; only its SHA-256 is stored. Each
//! token has two rows in `auth` on its user's shard, written and removed together: the token
//! row (by digest: what authenticating a request reads) and the session row (by user id and
//! a random 64-bit session id: what listing, ending one and revoking all of a user's sessions
//! scan). The session id is what users see; it is random, so it says nothing about the token.
//!
//! A session expires `session_lifetime` after it was last used. Recording every use would
//! turn every authenticated read into a write, so `last_used_ms` is rewritten only when it is
//! older than [`refresh_interval`] (an hour at most), with a relaxed write: losing a refresh
//! to a crash only makes the session end earlier. Expired sessions are removed when their
//! token is presented, and a user's expired sessions whenever they log in again, so the
//! `auth` column family does not grow with every log-in.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde_json::Map;
use sha2::{Digest, Sha256};

use crate::batch::Batch;
use crate::doc::{self, SessionDoc, TokenDoc};
use crate::error::{Error, Result};
use crate::ids::now_unix_ms;
use crate::keys::{self, CF_AUTH};
use crate::node::Inner;
use crate::shard::Shard;

/// How long an unused session lasts by default: 30 days.
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// The longest a session's `last_used_ms` may lag behind its real last use.
pub const MAX_REFRESH_INTERVAL: Duration = Duration::from_secs(3600);

const INVALID: Error = Error::Unauthenticated("invalid or expired token");
/// The refusal of a token whose session has expired.
pub const EXPIRED: &str = "expired token: log in again";

/// A fresh session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Bearer token (shown once; only its digest is stored).
    pub token: String,
    /// The user it authenticates.
    pub user_id: u64,
    /// Its id in the user's session list.
    pub session_id: u64,
    /// When it expires if it is not used, Unix milliseconds.
    pub expires_at_ms: u64,
}

/// The session a request authenticated with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authenticated {
    /// The user.
    pub user_id: u64,
    /// The session (its id in the user's list).
    pub session_id: u64,
    /// Whether its `last_used_ms` is old enough to be rewritten ([`Inner::touch_session`]).
    pub refresh_due: bool,
}

/// What checking a token found (an unknown token or a suspended user is an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    /// The token authenticates this session.
    Valid(Authenticated),
    /// The token's session has expired: refuse it with [`EXPIRED`] and remove it
    /// ([`Inner::log_out`]).
    Expired,
}

/// One of a user's sessions, as they see it in their list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Session id.
    pub id: u64,
    /// When it was created (logged in), Unix milliseconds.
    pub created_at_ms: u64,
    /// When it last authenticated a request, to within the refresh interval.
    pub last_used_ms: u64,
    /// When it expires if it is not used again.
    pub expires_at_ms: u64,
}

/// A session id as users see it: 16 lowercase hex digits.
pub fn format_session_id(id: u64) -> String {
    format!("{id:016x}")
}

/// Parses a [`format_session_id`] string.
pub fn parse_session_id(text: &str) -> Option<u64> {
    if text.len() != 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(text, 16).ok()
}

/// How stale `last_used_ms` may get before a use rewrites it: a quarter of the lifetime, at
/// most [`MAX_REFRESH_INTERVAL`], so a session used more often than that never expires.
pub fn refresh_interval(lifetime: Duration) -> Duration {
    (lifetime / 4).min(MAX_REFRESH_INTERVAL)
}

pub(crate) fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The user a bearer token names (its prefix, which routes the lookup to the user's
/// shard); says nothing of whether the token is valid.
pub fn token_user(token: &str) -> Option<u64> {
    token.split_once('.').and_then(|(id, _)| id.parse().ok())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Inner {
    fn lifetime_ms(&self) -> u64 {
        millis(self.config.session_lifetime)
    }

    /// When a session last used at `last_used_ms` expires.
    fn expiry(&self, last_used_ms: u64) -> u64 {
        last_used_ms.saturating_add(self.lifetime_ms())
    }

    /// Mints and stores a bearer token for a user, with its session row; the user's expired
    /// sessions are removed in the same batch.
    pub(crate) fn issue_token(&self, user_id: u64) -> Result<Session> {
        let shard = self.user_shard(user_id)?;
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let session_id = rand::rngs::OsRng.next_u64();
        let token = format!("{}.{}", user_id, URL_SAFE_NO_PAD.encode(secret));
        let digest = token_digest(&token);
        let now = now_unix_ms();
        let _guard = self.lock_user(user_id);
        let mut batch = Batch::new();
        for (key, session) in self.session_rows(shard, user_id)? {
            if self.expiry(session.last_used_ms) <= now {
                remove_session(&mut batch, &key, &session);
            }
        }
        let record = TokenDoc {
            user_id,
            created_at_ms: now,
            session_id: Some(session_id),
            last_used_ms: now,
            rest: Map::new(),
        };
        let session = SessionDoc {
            token_sha256: hex(&digest),
            created_at_ms: now,
            last_used_ms: now,
            rest: Map::new(),
        };
        batch.put(CF_AUTH, keys::token_key(&digest), doc::encode(&record)?);
        batch.put(
            CF_AUTH,
            keys::session_key(user_id, session_id),
            doc::encode(&session)?,
        );
        shard.write(batch)?;
        Ok(Session {
            token,
            user_id,
            session_id,
            expires_at_ms: self.expiry(now),
        })
    }

    /// A user's session rows, decoded (an undecodable row is skipped: it authenticates
    /// nothing, as its token row is found only through a readable session row or the token).
    fn session_rows(&self, shard: &Shard, user_id: u64) -> Result<Vec<(Vec<u8>, SessionDoc)>> {
        let rows = shard.scan_prefix(CF_AUTH, &keys::sessions_prefix(user_id))?;
        Ok(rows
            .into_iter()
            .filter_map(|(key, value)| Some((key, doc::decode::<SessionDoc>(&value).ok()?)))
            .collect())
    }

    /// Checks a bearer token without writing anything (so it can run on a read path).
    pub fn check_token(&self, token: &str) -> Result<TokenState> {
        let user_id = token_user(token).ok_or(INVALID)?;
        let shard = self.user_shard(user_id)?;
        let record: TokenDoc = match shard.get(CF_AUTH, &keys::token_key(&token_digest(token)))? {
            Some(bytes) => doc::decode(&bytes)?,
            None => return Err(INVALID),
        };
        if record.user_id != user_id {
            return Err(INVALID);
        }
        // A token from before the session index cannot be listed or revoked with its user's
        // sessions, so it is treated as expired.
        let Some(session_id) = record.session_id else {
            return Ok(TokenState::Expired);
        };
        let now = now_unix_ms();
        let last_used = record.last_used_ms.max(record.created_at_ms);
        if self.expiry(last_used) <= now {
            return Ok(TokenState::Expired);
        }
        match self.profile_doc(user_id)? {
            Some(p) if !p.suspended => {}
            Some(_) => return Err(Error::Forbidden("this account is suspended")),
            None => return Err(INVALID),
        }
        let refresh = millis(refresh_interval(self.config.session_lifetime));
        Ok(TokenState::Valid(Authenticated {
            user_id,
            session_id,
            refresh_due: now.saturating_sub(last_used) >= refresh,
        }))
    }

    /// Records that a session was just used, extending it (relaxed write: losing it to a
    /// crash only shortens the session). Does nothing if the session ended meanwhile.
    pub fn touch_session(&self, token: &str) -> Result<()> {
        let user_id = token_user(token).ok_or(INVALID)?;
        let shard = self.user_shard(user_id)?;
        let token_key = keys::token_key(&token_digest(token));
        // Under the user's lock, so a session ended concurrently is not written back.
        let _guard = self.lock_user(user_id);
        let Some(bytes) = shard.get(CF_AUTH, &token_key)? else {
            return Ok(());
        };
        let mut record: TokenDoc = doc::decode(&bytes)?;
        let Some(session_id) = record.session_id.filter(|_| record.user_id == user_id) else {
            return Ok(());
        };
        let session_key = keys::session_key(user_id, session_id);
        let Some(bytes) = shard.get(CF_AUTH, &session_key)? else {
            return Ok(());
        };
        let mut session: SessionDoc = doc::decode(&bytes)?;
        let now = now_unix_ms();
        record.last_used_ms = now;
        session.last_used_ms = now;
        let mut batch = Batch::new();
        batch.put(CF_AUTH, token_key, doc::encode(&record)?);
        batch.put(CF_AUTH, session_key, doc::encode(&session)?);
        shard.write_relaxed(batch)
    }

    /// The user a bearer token authenticates, extending or removing its session as due (for
    /// callers without a read path of their own; the server splits these steps).
    pub fn authenticate(&self, token: &str) -> Result<Authenticated> {
        match self.check_token(token)? {
            TokenState::Valid(auth) => {
                if auth.refresh_due {
                    self.touch_session(token)?;
                }
                Ok(auth)
            }
            TokenState::Expired => {
                self.log_out(token)?;
                Err(Error::Unauthenticated(EXPIRED))
            }
        }
    }

    /// Ends a token's session: it stops authenticating at once. Idempotent.
    pub fn log_out(&self, token: &str) -> Result<()> {
        let user_id = token_user(token).ok_or(INVALID)?;
        let shard = self.user_shard(user_id)?;
        let token_key = keys::token_key(&token_digest(token));
        let _guard = self.lock_user(user_id);
        let mut batch = Batch::new();
        if let Some(bytes) = shard.get(CF_AUTH, &token_key)? {
            if let Ok(TokenDoc {
                user_id: owner,
                session_id: Some(session_id),
                ..
            }) = doc::decode::<TokenDoc>(&bytes)
            {
                batch.delete(CF_AUTH, keys::session_key(owner, session_id));
            }
            batch.delete(CF_AUTH, token_key);
        }
        shard.write(batch)
    }

    /// A user's live sessions, newest first.
    pub fn sessions(&self, user_id: u64) -> Result<Vec<SessionInfo>> {
        let now = now_unix_ms();
        let mut out: Vec<SessionInfo> = self
            .session_rows(self.user_shard(user_id)?, user_id)?
            .into_iter()
            .filter_map(|(key, s)| {
                let (_, id) = keys::decode_session_key(&key)?;
                let last_used_ms = s.last_used_ms.max(s.created_at_ms);
                Some(SessionInfo {
                    id,
                    created_at_ms: s.created_at_ms,
                    last_used_ms,
                    expires_at_ms: self.expiry(last_used_ms),
                })
            })
            .filter(|s| s.expires_at_ms > now)
            .collect();
        out.sort_by_key(|s| std::cmp::Reverse((s.created_at_ms, s.id)));
        Ok(out)
    }

    /// Ends one of a user's sessions; another user's session id is [`Error::NotFound`].
    pub fn end_session(&self, user_id: u64, session_id: u64) -> Result<()> {
        let shard = self.user_shard(user_id)?;
        let key = keys::session_key(user_id, session_id);
        let _guard = self.lock_user(user_id);
        let session: SessionDoc = match shard.get(CF_AUTH, &key)? {
            Some(bytes) => doc::decode(&bytes)?,
            None => return Err(Error::NotFound("session")),
        };
        let mut batch = Batch::new();
        remove_session(&mut batch, &key, &session);
        shard.write(batch)
    }

    /// Adds to `batch` the removal of every session of a user; returns how many were live.
    /// The caller holds the user's lock and writes the batch.
    pub(crate) fn end_all_sessions(&self, user_id: u64, batch: &mut Batch) -> Result<usize> {
        let now = now_unix_ms();
        let mut live = 0;
        for (key, session) in self.session_rows(self.user_shard(user_id)?, user_id)? {
            if self.expiry(session.last_used_ms.max(session.created_at_ms)) > now {
                live += 1;
            }
            remove_session(batch, &key, &session);
        }
        Ok(live)
    }
}

/// Removes a session row and the token row it points at.
fn remove_session(batch: &mut Batch, key: &[u8], session: &SessionDoc) {
    if let Some(digest) = unhex32(&session.token_sha256) {
        batch.delete(CF_AUTH, keys::token_key(&digest));
    }
    batch.delete(CF_AUTH, key);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_round_trip_as_hex() {
        for id in [0, 1, 0xabc, u64::MAX] {
            assert_eq!(parse_session_id(&format_session_id(id)), Some(id));
        }
        assert_eq!(parse_session_id("123"), None);
        assert_eq!(parse_session_id("+000000000000001"), None);
        assert_eq!(parse_session_id("zzzzzzzzzzzzzzzz"), None);
    }

    #[test]
    fn digests_round_trip_as_hex() {
        let digest = token_digest("1.abc");
        assert_eq!(unhex32(&hex(&digest)), Some(digest));
        assert_eq!(unhex32("ab"), None);
        assert_eq!(unhex32(&"é".repeat(32)), None);
    }

    #[test]
    fn refresh_is_at_most_hourly_and_a_quarter_of_the_lifetime() {
        assert_eq!(
            refresh_interval(DEFAULT_SESSION_LIFETIME),
            MAX_REFRESH_INTERVAL
        );
        assert_eq!(
            refresh_interval(Duration::from_secs(4)),
            Duration::from_secs(1)
        );
    }
}
