//! Accounts: sign-up, log-in and profiles (the tokens a log-in mints are `sessions.rs`'s).

use crate::batch::Batch;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde_json::{Map, Value};

use crate::doc::{self, PasswordDoc, ProfileDoc};
use crate::error::{Error, Result};
use crate::ids::now_unix_ms;
use crate::keys::{self, Counter, CF_AUTH, CF_HANDLES, CF_PROFILES};
use crate::model::Profile;
use crate::node::Inner;
pub use crate::sessions::Session;
use crate::steps::Step;

/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME: usize = 50;
/// Longest bio, in characters.
pub const MAX_BIO: usize = 160;
/// Longest avatar URL, in bytes.
pub const MAX_AVATAR_URL: usize = 512;
/// Largest encoded `extra` object, in bytes.
pub const MAX_EXTRA_BYTES: usize = 4096;

/// A sign-up request.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Wanted handle.
    pub handle: String,
    /// Password in the clear.
    pub password: String,
    /// Display name (defaults to the handle).
    pub display_name: Option<String>,
    /// E-mail address, which logs in like the handle (unique, any case); none if not given.
    pub email: Option<String>,
}

/// A profile update; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProfilePatch {
    /// New display name.
    pub display_name: Option<String>,
    /// New bio.
    pub bio: Option<String>,
    /// New avatar URL (empty clears it).
    pub avatar_url: Option<String>,
    /// Properties merged into `extra`; a null value removes the property.
    pub extra: Option<Map<String, Value>>,
}

pub(crate) fn valid_handle(handle: &str) -> bool {
    (1..=15).contains(&handle.len())
        && handle
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

pub(crate) fn check_display_name(name: &str) -> Result<()> {
    let n = name.chars().count();
    if n == 0 || n > MAX_DISPLAY_NAME || name.trim().is_empty() {
        return Err(Error::invalid(
            "display_name",
            format!("must be 1 to {MAX_DISPLAY_NAME} characters, not only spaces"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "display_name",
            "must not contain control characters",
        ));
    }
    Ok(())
}

fn email_taken() -> Error {
    Error::Conflict {
        field: "email",
        message: "this e-mail address is taken".into(),
    }
}

/// A name that points at one user in `handles`, lowercase: a handle or an e-mail address.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Name<'a> {
    /// A handle.
    Handle(&'a str),
    /// An e-mail address.
    Email(&'a str),
}

impl Name<'_> {
    fn key(self) -> Vec<u8> {
        match self {
            Name::Handle(h) => keys::handle_key(h),
            Name::Email(e) => keys::email_key(e),
        }
    }

    fn shard(self, placement: &crate::placement::Placement) -> Result<&crate::shard::Shard> {
        match self {
            Name::Handle(h) => placement.handle(h),
            Name::Email(e) => placement.email(e),
        }
    }

    fn taken(self) -> Error {
        match self {
            Name::Handle(h) => Error::Conflict {
                field: "handle",
                message: format!("@{h} is taken"),
            },
            Name::Email(_) => email_taken(),
        }
    }
}

impl std::fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Name::Handle(h) => write!(f, "@{h}"),
            Name::Email(e) => write!(f, "{e}"),
        }
    }
}

/// Longest e-mail address, in bytes (RFC 5321's path limit).
pub const MAX_EMAIL: usize = 254;

/// Whether `email` looks like an address: one `@` between a non-empty local part and a
/// domain with a dot, no spaces or control characters. Delivery is never attempted, so this
/// only keeps obvious mistakes (and handles typed in the wrong field) out.
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= MAX_EMAIL
        && !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn check_password(password: &str) -> Result<()> {
    if !(8..=256).contains(&password.len()) {
        return Err(Error::invalid("password", "must be 8 to 256 bytes"));
    }
    Ok(())
}

// A fixed hash to verify against when the handle is unknown, so a failed log-in takes as
// long whether or not the handle exists.
static DUMMY_PHC: std::sync::LazyLock<Option<String>> = std::sync::LazyLock::new(|| {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(b"chirp-dummy-password", &salt)
        .ok()
        .map(|h| h.to_string())
});

/// Hashes a password as sign-up does (argon2id, random salt) into a PHC string; bulk imports
/// store such strings for their users.
pub fn hash_password(password: &str) -> Result<String> {
    check_password(password)?;
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| Error::invalid("password", e.to_string()))?
        .to_string())
}

fn verify_password(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// How long a password hash may wait to start before its request is refused (503).
pub(crate) const HASH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl Inner {
    /// Runs an argon2 hash or verification on the node's hashing threads, so a burst of
    /// sign-ups or log-ins costs at most `password_hash_slots` × 19 MiB; one that cannot start
    /// within [`HASH_WAIT`] fails with [`Error::Unavailable`].
    pub(crate) fn hashed<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        self.hashing.run(f)
    }

    /// Creates an account.
    pub fn sign_up(&self, req: NewUser) -> Result<Profile> {
        if !valid_handle(&req.handle) {
            return Err(Error::invalid(
                "handle",
                "must be 1 to 15 characters of A-Z, a-z, 0-9 and _",
            ));
        }
        check_password(&req.password)?;
        let email = req.email.as_deref().map(str::to_ascii_lowercase);
        if email.as_deref().is_some_and(|e| !valid_email(e)) {
            return Err(Error::invalid("email", "is not an e-mail address"));
        }
        let display_name = req.display_name.unwrap_or_else(|| req.handle.clone());
        check_display_name(&display_name)?;
        let password = req.password.clone();
        let phc = self.hashed(move || hash_password(&password))??;

        let lower = req.handle.to_ascii_lowercase();
        let taken = || Error::Conflict {
            field: "handle",
            message: format!("@{} is taken", req.handle),
        };
        // A cheap look first: a taken handle costs no profile write.
        if self.handle_owner(&lower)?.is_some() {
            return Err(taken());
        }
        if let Some(email) = &email {
            if self.email_owner(email)?.is_some() {
                return Err(email_taken());
            }
        }
        let user_id = self.mint_user_id()?;
        let profile = ProfileDoc {
            id: user_id,
            handle: req.handle.clone(),
            display_name,
            bio: String::new(),
            avatar_url: String::new(),
            created_at_ms: now_unix_ms(),
            extra: Map::new(),
            suspended: false,
            rest: Map::new(),
        };
        // Steps on up to three shards, each idempotent. The profile lands before the names
        // that point at it: a crash in between leaves an unreachable profile rather than a
        // handle that points at nothing and can never be claimed again.
        let password = PasswordDoc {
            phc,
            email: email.clone(),
        };
        self.write_new_profile(&profile, &password)?;
        let claimed = match &email {
            Some(email) => self.claim_email(email, user_id).map_err(|e| match e {
                Error::Conflict { .. } => email_taken(),
                e => e,
            }),
            None => Ok(()),
        };
        fail::fail_point!("accounts::claim");
        let claimed = claimed.and_then(|()| {
            self.claim_handle(&lower, user_id).map_err(|e| match e {
                Error::Conflict { .. } => taken(),
                e => e,
            })
        });
        match claimed {
            Ok(()) => self.profile_view(profile),
            Err(e) => {
                // Lost a name to a concurrent sign-up (or failed): the profile no handle
                // reaches is removed, with the address it may hold; left behind, they would
                // only be unreachable.
                let undo = match &email {
                    Some(email) => self.release_email(email, user_id),
                    None => Ok(()),
                }
                .and_then(|()| self.remove_unclaimed_profile(user_id));
                if let Err(undo) = undo {
                    tracing::warn!(user_id, error = %undo, "removing an unclaimed profile failed");
                }
                Err(e)
            }
        }
    }

    /// A user id minted on a shard this node is the primary of.
    fn mint_user_id(&self) -> Result<u64> {
        self.placement.mint_user(self.new_user_shard()?)
    }

    /// Step one of a sign-up, on the user's shard: the profile and the password.
    fn write_new_profile(&self, profile: &ProfileDoc, password: &PasswordDoc) -> Result<()> {
        let mut batch = Batch::new();
        batch.put(CF_PROFILES, keys::id_key(profile.id), doc::encode(profile)?);
        batch.put(
            CF_AUTH,
            keys::password_key(profile.id),
            doc::encode(password)?,
        );
        self.user_shard(profile.id)?.write(batch)
    }

    /// Step two, on the handle's shard: points the handle at `user_id` unless another user
    /// holds it (a conflict). Idempotent: claiming a handle the user already holds succeeds.
    fn claim_handle(&self, lower: &str, user_id: u64) -> Result<()> {
        self.step(Step::ClaimHandle {
            handle: lower.to_string(),
            user: user_id,
        })?
        .done()
    }

    /// Points a lowercase e-mail address at `user_id` unless another user holds it (on the
    /// address's shard; idempotent like [`Self::claim_handle`]).
    fn claim_email(&self, lower: &str, user_id: u64) -> Result<()> {
        self.step(Step::ClaimEmail {
            email: lower.to_string(),
            user: user_id,
        })?
        .done()
    }

    /// Undoes [`Self::claim_email`] when a sign-up fails after it: the address is freed only
    /// if it still points at `user_id`.
    fn release_email(&self, lower: &str, user_id: u64) -> Result<()> {
        self.step(Step::ReleaseEmail {
            email: lower.to_string(),
            user: user_id,
        })?
        .done()
    }

    /// The user a lowercase e-mail address points at, wherever its shard is.
    fn email_owner(&self, lower: &str) -> Result<Option<u64>> {
        self.step(Step::EmailOwner {
            email: lower.to_string(),
        })?
        .user()
    }

    /// Undoes step one of a sign-up whose handle claim failed.
    fn remove_unclaimed_profile(&self, user_id: u64) -> Result<()> {
        let mut batch = Batch::new();
        batch.delete(CF_PROFILES, keys::id_key(user_id));
        batch.delete(CF_AUTH, keys::password_key(user_id));
        self.user_shard(user_id)?.write(batch)
    }

    /// The user a lowercase handle points at, wherever its shard is.
    fn handle_owner(&self, lower: &str) -> Result<Option<u64>> {
        self.step(Step::HandleOwner {
            handle: lower.to_string(),
        })?
        .user()
    }

    /// The user a name points at, on this node, which holds the name's shard.
    pub(crate) fn local_name_owner(&self, name: Name<'_>) -> Result<Option<u64>> {
        match name.shard(&self.placement)?.get(CF_HANDLES, &name.key())? {
            Some(id) => keys::decode_id(&id)
                .map(Some)
                .ok_or_else(|| Error::Corrupt(format!("the row of {name}"))),
            None => Ok(None),
        }
    }

    /// Points a name at `user_id` unless another user holds it (a conflict), on this node,
    /// which holds the name's shard. Idempotent: claiming a name the user already holds
    /// succeeds. Claims are serialized per node, and all claims of a shard run on its
    /// primary.
    pub(crate) fn local_claim(&self, name: Name<'_>, user_id: u64) -> Result<()> {
        let shard = name.shard(&self.placement)?;
        let _guard = self.lock_handles();
        match self.local_name_owner(name)? {
            Some(owner) if owner == user_id => Ok(()),
            Some(_) => Err(name.taken()),
            None => {
                // Between the check and the write: the handle lock keeps them one step.
                fail::fail_point!("accounts::claim::checked");
                let mut batch = Batch::new();
                batch.put(CF_HANDLES, name.key(), keys::id_key(user_id));
                shard.write(batch)
            }
        }
    }

    /// Frees a name if it still points at `user_id`, on this node, which holds its shard.
    pub(crate) fn local_release(&self, name: Name<'_>, user_id: u64) -> Result<()> {
        let shard = name.shard(&self.placement)?;
        let _guard = self.lock_handles();
        if self.local_name_owner(name)? == Some(user_id) {
            let mut batch = Batch::new();
            batch.delete(CF_HANDLES, name.key());
            shard.write(batch)?;
        }
        Ok(())
    }

    /// Checks a handle (or the e-mail address the user signed up with) and password and
    /// mints a bearer token.
    pub fn log_in(&self, handle: &str, password: &str) -> Result<Session> {
        const BAD: Error = Error::Unauthenticated("unknown handle or wrong password");
        let user = match self.user_by_login(handle)? {
            Some(user) => user,
            None => {
                if let Some(phc) = DUMMY_PHC.as_ref() {
                    let password = password.to_owned();
                    self.hashed(move || verify_password(phc, &password))?;
                }
                return Err(BAD);
            }
        };
        let shard = self.user_shard(user.id)?;
        let cred: PasswordDoc = match shard.get(CF_AUTH, &keys::password_key(user.id))? {
            Some(bytes) => doc::decode(&bytes)?,
            None => return Err(BAD),
        };
        let password = password.to_owned();
        if !self.hashed(move || verify_password(&cred.phc, &password))? {
            return Err(BAD);
        }
        if user.suspended {
            return Err(Error::Forbidden("this account is suspended"));
        }
        self.issue_token(user.id)
    }

    /// Resolves a `{userId}` path segment: a numeric id or `@handle`.
    pub fn resolve_user(&self, reference: &str) -> Result<u64> {
        let found = match reference.strip_prefix('@') {
            Some(handle) if valid_handle(handle) => {
                self.handle_owner(&handle.to_ascii_lowercase())?
            }
            Some(_) => None,
            None => match reference.parse::<u64>() {
                Ok(id) => self.find_profile(id)?.map(|p| p.id),
                Err(_) => None,
            },
        };
        found.ok_or(Error::NotFound("user"))
    }

    /// The user a log-in names: an e-mail address (anything with an `@`) or a handle.
    pub(crate) fn user_by_login(&self, login: &str) -> Result<Option<ProfileDoc>> {
        if !login.contains('@') {
            return self.user_by_handle(login);
        }
        if !valid_email(login) {
            return Ok(None);
        }
        match self.email_owner(&login.to_ascii_lowercase())? {
            Some(id) => self.profile_doc(id),
            None => Ok(None),
        }
    }

    /// The user a log-in names (a handle or an e-mail address), if any: where a log-in must
    /// run on a cluster. Only the name's claim is read (through its shard's step), never the
    /// profile, whose shard may be held elsewhere.
    pub fn login_user(&self, login: &str) -> Result<Option<u64>> {
        if login.contains('@') {
            if !valid_email(login) {
                return Ok(None);
            }
            return self.email_owner(&login.to_ascii_lowercase());
        }
        if !valid_handle(login) {
            return Ok(None);
        }
        self.handle_owner(&login.to_ascii_lowercase())
    }

    /// The e-mail address a user signed up with, if any.
    pub fn email_of(&self, user_id: u64) -> Result<Option<String>> {
        match self
            .user_shard(user_id)?
            .get(CF_AUTH, &keys::password_key(user_id))?
        {
            Some(bytes) => Ok(doc::decode::<PasswordDoc>(&bytes)?.email),
            None => Ok(None),
        }
    }

    pub(crate) fn user_by_handle(&self, handle: &str) -> Result<Option<ProfileDoc>> {
        if !valid_handle(handle) {
            return Ok(None);
        }
        match self.handle_owner(&handle.to_ascii_lowercase())? {
            Some(id) => self.profile_doc(id),
            None => Ok(None),
        }
    }

    pub(crate) fn profile_doc(&self, user_id: u64) -> Result<Option<ProfileDoc>> {
        match self
            .user_shard(user_id)?
            .get(CF_PROFILES, &keys::id_key(user_id))?
        {
            Some(bytes) => Ok(Some(doc::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    pub(crate) fn profile_view(&self, p: ProfileDoc) -> Result<Profile> {
        Ok(Profile {
            followers_count: self.counter(p.id, Counter::Followers)?,
            following_count: self.counter(p.id, Counter::Following)?,
            tweet_count: self.counter(p.id, Counter::Tweets)?,
            id: p.id,
            handle: p.handle,
            display_name: p.display_name,
            bio: p.bio,
            avatar_url: p.avatar_url,
            created_at_ms: p.created_at_ms,
            extra: p.extra,
            suspended: p.suspended,
        })
    }

    /// A user's public profile, wherever the user's shard is.
    pub fn profile(&self, user_id: u64) -> Result<Profile> {
        self.find_profile(user_id)?.ok_or(Error::NotFound("user"))
    }

    /// Whether a user exists, wherever the user's shard is (one read when it is here).
    pub(crate) fn user_exists(&self, user_id: u64) -> Result<bool> {
        match self.user_shard(user_id) {
            Ok(shard) if self.reads_here(shard.index()) => Ok(self.profile_doc(user_id)?.is_some()),
            Ok(_) | Err(Error::NotHere(_)) => Ok(self.find_profile(user_id)?.is_some()),
            Err(e) => Err(e),
        }
    }

    /// A user's profile with its counters, wherever the user's shard is; None if no such
    /// user.
    pub(crate) fn find_profile(&self, user_id: u64) -> Result<Option<Profile>> {
        self.step(Step::Profile { user: user_id })?.profile()
    }

    /// Updates `target`'s profile as `actor`; only users may edit their own.
    pub fn update_profile(&self, actor: u64, target: u64, patch: ProfilePatch) -> Result<Profile> {
        if actor != target {
            return Err(Error::Forbidden("you can only edit your own profile"));
        }
        if let Some(name) = &patch.display_name {
            check_display_name(name)?;
        }
        if let Some(bio) = &patch.bio {
            if bio.chars().count() > MAX_BIO {
                return Err(Error::invalid(
                    "bio",
                    format!("must be at most {MAX_BIO} characters"),
                ));
            }
        }
        if let Some(url) = &patch.avatar_url {
            let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
            // An image uploaded here is named by its path, which stays right whatever host
            // the server is reached by.
            let uploaded = url
                .strip_prefix("/media/")
                .is_some_and(|id| id.parse::<u64>().is_ok());
            if !url.is_empty()
                && (!(scheme_ok || uploaded)
                    || url.len() > MAX_AVATAR_URL
                    || url.contains(char::is_whitespace))
            {
                return Err(Error::invalid(
                    "avatar_url",
                    format!("must be an http(s) URL of at most {MAX_AVATAR_URL} bytes, the path of an uploaded image (/media/ID), or empty"),
                ));
            }
        }
        let _guard = self.lock_user(target);
        let mut doc = self.profile_doc(target)?.ok_or(Error::NotFound("user"))?;
        if let Some(name) = patch.display_name {
            doc.display_name = name;
        }
        if let Some(bio) = patch.bio {
            doc.bio = bio;
        }
        if let Some(url) = patch.avatar_url {
            doc.avatar_url = url;
        }
        if let Some(extra) = patch.extra {
            merge_extra(&mut doc.extra, extra, "extra")?;
        }
        let shard = self.user_shard(target)?;
        let mut batch = Batch::new();
        batch.put(CF_PROFILES, keys::id_key(target), doc::encode(&doc)?);
        shard.write(batch)?;
        self.profile_view(doc)
    }
}

/// Merges `patch` into `extra` (null removes a property) and checks the size limit.
pub(crate) fn merge_extra(
    extra: &mut Map<String, Value>,
    patch: Map<String, Value>,
    field: &'static str,
) -> Result<()> {
    for (key, value) in patch {
        if key.is_empty() || key.len() > 64 {
            return Err(Error::invalid(
                field,
                "property names must be 1 to 64 bytes",
            ));
        }
        if value.is_null() {
            extra.remove(&key);
        } else {
            extra.insert(key, value);
        }
    }
    let size = serde_json::to_vec(extra)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_EXTRA_BYTES {
        return Err(Error::invalid(
            field,
            format!("must encode to at most {MAX_EXTRA_BYTES} bytes of JSON"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles() {
        assert!(valid_handle("a"));
        assert!(valid_handle("Abc_123456789_x"));
        assert!(!valid_handle(""));
        assert!(!valid_handle("abcdefghijklmnop"));
        assert!(!valid_handle("bad-handle"));
        assert!(!valid_handle("ünïcode"));
    }

    #[test]
    fn extra_merge_removes_nulls_and_limits_size() {
        let mut extra = Map::new();
        let patch = serde_json::json!({"a": 1, "b": "x"});
        merge_extra(
            &mut extra,
            patch.as_object().cloned().unwrap_or_default(),
            "extra",
        )
        .expect("merges");
        let patch = serde_json::json!({"a": null, "c": [1]});
        merge_extra(
            &mut extra,
            patch.as_object().cloned().unwrap_or_default(),
            "extra",
        )
        .expect("merges");
        assert_eq!(
            Value::Object(extra.clone()),
            serde_json::json!({"b": "x", "c": [1]})
        );
        let big = serde_json::json!({"big": "x".repeat(MAX_EXTRA_BYTES)});
        let err = merge_extra(
            &mut extra,
            big.as_object().cloned().unwrap_or_default(),
            "extra",
        );
        assert!(matches!(err, Err(Error::Invalid { field: "extra", .. })));
    }
}
