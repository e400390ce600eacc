//! Client applications registered through the Mastodon client API (`POST /api/v1/apps`):
//! each has a public client id and a secret, stored on the shard its client id hashes to
//! (the secret only as its SHA-256, like session tokens). A client presents both to log a
//! user in; the application itself authenticates with a token derived from them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde_json::Map;
use sha2::{Digest, Sha256};

use crate::batch::Batch;
use crate::doc::{self, AppDoc};
use crate::error::{Error, Result};
use crate::ids::now_unix_ms;
use crate::keys::{self, CF_AUTH};
use crate::node::Inner;
use crate::steps::Step;

/// Longest application name, in characters.
pub const MAX_APP_NAME: usize = 100;
/// Largest `redirect_uris`, `scopes` or `website`, in bytes.
pub const MAX_APP_FIELD: usize = 2048;

/// What an application registers with.
#[derive(Debug, Clone, Default)]
pub struct NewApp {
    /// Its name, shown to users.
    pub name: String,
    /// Where authorization codes go, one per line.
    pub redirect_uris: String,
    /// The scopes it asks for, space-separated.
    pub scopes: String,
    /// Its web site.
    pub website: Option<String>,
}

/// A registered application with its secret, as shown once at registration.
#[derive(Debug, Clone)]
pub struct RegisteredApp {
    /// The stored application.
    pub app: AppDoc,
    /// The client secret in the clear.
    pub secret: String,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn secret_digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compares two strings in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Inner {
    /// Registers a client application.
    pub fn register_app(&self, new: NewApp) -> Result<RegisteredApp> {
        let chars = new.name.chars().count();
        if chars == 0 || chars > MAX_APP_NAME || new.name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "client_name",
                format!("must be 1 to {MAX_APP_NAME} characters, without control characters"),
            ));
        }
        if new.redirect_uris.trim().is_empty() || new.redirect_uris.len() > MAX_APP_FIELD {
            return Err(Error::invalid(
                "redirect_uris",
                format!("must name at least one URI, in at most {MAX_APP_FIELD} bytes"),
            ));
        }
        if new.scopes.len() > MAX_APP_FIELD {
            return Err(Error::invalid(
                "scopes",
                format!("must be at most {MAX_APP_FIELD} bytes"),
            ));
        }
        if new
            .website
            .as_ref()
            .is_some_and(|w| w.len() > MAX_APP_FIELD)
        {
            return Err(Error::invalid(
                "website",
                format!("must be at most {MAX_APP_FIELD} bytes"),
            ));
        }
        let secret = random_token();
        let app = AppDoc {
            client_id: random_token(),
            secret_sha256: secret_digest(&secret),
            name: new.name,
            redirect_uris: new.redirect_uris.trim().to_string(),
            scopes: new.scopes,
            website: new.website.filter(|w| !w.is_empty()),
            created_at_ms: now_unix_ms(),
            rest: Map::new(),
        };
        self.step(Step::PutApp {
            app: Box::new(app.clone()),
        })?
        .done()?;
        Ok(RegisteredApp { app, secret })
    }

    /// The application of a client id, if registered (its public part: the secret is only
    /// stored as a digest).
    pub fn app_of(&self, client_id: &str) -> Result<Option<AppDoc>> {
        if client_id.is_empty() || client_id.len() > MAX_APP_FIELD {
            return Ok(None);
        }
        self.step(Step::App {
            client_id: client_id.to_string(),
        })?
        .app()
    }

    /// The application a client id and secret name, or an authentication error for an
    /// unknown client id or a wrong secret (the same error for both).
    pub fn check_app(&self, client_id: &str, secret: &str) -> Result<AppDoc> {
        const BAD: Error = Error::Unauthenticated("unknown client or wrong client secret");
        let app = self.app_of(client_id)?.ok_or(BAD)?;
        if same(&app.secret_sha256, &secret_digest(secret)) {
            Ok(app)
        } else {
            Err(BAD)
        }
    }

    /// [`Step::PutApp`] on this node, which holds the application's shard.
    pub(crate) fn local_put_app(&self, app: &AppDoc) -> Result<()> {
        let mut batch = Batch::new();
        batch.put(CF_AUTH, keys::app_key(&app.client_id), doc::encode(app)?);
        self.placement.app(&app.client_id)?.write(batch)
    }

    /// [`Step::App`] on this node, which holds the application's shard.
    pub(crate) fn local_app(&self, client_id: &str) -> Result<Option<AppDoc>> {
        match self
            .placement
            .app(client_id)?
            .get(CF_AUTH, &keys::app_key(client_id))?
        {
            Some(bytes) => Ok(Some(doc::decode(&bytes)?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        assert_eq!(secret_digest("x").len(), 64);
        assert_ne!(random_token(), random_token());
    }
}
