//! Operator actions on accounts: suspend, reset a password, mint a token. They bypass the
//! "only as yourself" rules of the public API, so only the admin listener and `chirpctl`
//! reach them.

use serde::{Deserialize, Serialize};

use crate::accounts::{hash_password, Session};
use crate::batch::Batch;
use crate::doc::{self, PasswordDoc};
use crate::error::{Error, Result};
use crate::keys::{self, CF_AUTH, CF_PROFILES};
use crate::model::Profile;
use crate::node::Inner;

impl Inner {
    /// Suspends or reinstates an account. A suspended user cannot log in, and their tokens
    /// are refused until they are reinstated.
    pub fn set_suspended(&self, user_id: u64, suspended: bool) -> Result<Profile> {
        let _guard = self.lock_user(user_id);
        let mut doc = self.profile_doc(user_id)?.ok_or(Error::NotFound("user"))?;
        doc.suspended = suspended;
        let shard = self.user_shard(user_id)?;
        let mut batch = Batch::new();
        batch.put(CF_PROFILES, keys::id_key(user_id), doc::encode(&doc)?);
        shard.write(batch)?;
        tracing::info!(user = user_id, suspended, "account suspension changed");
        self.profile_view(doc)
    }

    /// Sets a new password and revokes every session of the user (a reset usually means the
    /// old credentials leaked). Returns how many live sessions were revoked.
    pub fn reset_password(&self, user_id: u64, password: &str) -> Result<usize> {
        if self.profile_doc(user_id)?.is_none() {
            return Err(Error::NotFound("user"));
        }
        let password = password.to_owned();
        let phc = self.hashed(move || hash_password(&password))??;
        let _guard = self.lock_user(user_id);
        let shard = self.user_shard(user_id)?;
        // The e-mail address stays with the new password.
        let email = match shard.get(CF_AUTH, &keys::password_key(user_id))? {
            Some(bytes) => doc::decode::<PasswordDoc>(&bytes)?.email,
            None => None,
        };
        let mut batch = Batch::new();
        batch.put(
            CF_AUTH,
            keys::password_key(user_id),
            doc::encode(&PasswordDoc { phc, email })?,
        );
        // One prefix scan of the user's session index, in the batch that sets the password:
        // no session outlives the old password.
        let revoked = self.end_all_sessions(user_id, &mut batch)?;
        shard.write(batch)?;
        tracing::info!(user = user_id, revoked, "password reset");
        Ok(revoked)
    }

    /// Mints a bearer token for a user without their password (for support and scripts).
    pub fn mint_token(&self, user_id: u64) -> Result<Session> {
        match self.profile_doc(user_id)? {
            None => Err(Error::NotFound("user")),
            Some(p) if p.suspended => Err(Error::Forbidden("this account is suspended")),
            Some(_) => self.issue_token(user_id),
        }
    }
}

/// An account as operators see it (the admin listener's and `chirpctl`'s shape).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Account {
    /// User id (a string in JSON: 64-bit ids do not survive JavaScript numbers).
    #[serde(with = "id_string")]
    pub id: u64,
    /// Handle.
    pub handle: String,
    /// Display name.
    pub display_name: String,
    /// Whether the account is suspended.
    pub suspended: bool,
    /// Followers.
    pub followers: u64,
    /// Followees.
    pub following: u64,
    /// Live tweets.
    pub tweets: u64,
}

impl From<&Profile> for Account {
    fn from(p: &Profile) -> Self {
        Account {
            id: p.id,
            handle: p.handle.clone(),
            display_name: p.display_name.clone(),
            suspended: p.suspended,
            followers: p.followers_count,
            following: p.following_count,
            tweets: p.tweet_count,
        }
    }
}

/// A token minted by an operator.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MintedToken {
    /// The bearer token.
    pub token: String,
    /// The user it authenticates.
    #[serde(with = "id_string")]
    pub user_id: u64,
}

/// The result of a password reset.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PasswordReset {
    /// Sessions revoked.
    pub revoked_tokens: usize,
}

/// Serializes a u64 as a decimal string.
mod id_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(id)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}
