//! Where `chirpctl` acts: a running node's admin listener, or a stopped node's data dir
//! opened in-process. Both give the same engine types, so commands and output do not care.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use chirp_engine::{
    Account, BackupReport, CompactJob, CompactProgress, CompactReport, MintedToken, NewUser, Node,
    NodeConfig, NodeStats, OpenMode, PasswordReset, VerifyReport,
};

use crate::error::{Error, Result};

/// A node to act on.
pub enum Target {
    /// A running node, through its admin listener (`http://HOST:PORT`).
    Remote(Remote),
    /// A stopped node's data dir, opened here (RocksDB's lock refuses a running one).
    Local(Box<Node>),
}

/// An admin listener client.
pub struct Remote {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Remote {
    /// A client of the admin listener at `base`, sending `token` as its bearer token.
    pub fn new(base: &str, token: Option<String>) -> Remote {
        Remote {
            base: base.trim_end_matches('/').to_string(),
            token,
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(5))
                // Verification and checkpoints of a big node take a while.
                .timeout(Duration::from_secs(3600))
                .build(),
        }
    }

    fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<T> {
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.request(method, &url);
        if let Some(token) = &self.token {
            req = req.set("Authorization", &format!("Bearer {token}"));
        }
        let result = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        let unreachable = |message: String| Error::Http(format!("{url}: {message}"));
        match result {
            Ok(resp) => resp.into_json().map_err(|e| unreachable(e.to_string())),
            Err(ureq::Error::Status(status, resp)) => {
                let text = resp.into_string().unwrap_or_default();
                let detail = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v["detail"].as_str().map(str::to_owned))
                    .unwrap_or(text);
                Err(Error::Status {
                    what: url,
                    status,
                    body: detail,
                })
            }
            Err(e) => Err(unreachable(e.to_string())),
        }
    }
}

/// A user reference as the admin API takes it: a numeric id, or a handle with or without `@`.
fn user_ref(user: &str) -> String {
    if user.starts_with('@') || user.bytes().all(|b| b.is_ascii_digit()) {
        user.to_string()
    } else {
        format!("@{user}")
    }
}

impl Target {
    /// Opens a stopped node's data dir; fails if a node is running on it. Read-only unless
    /// `writes` (then a replica's dir is refused); either way no fan-out job runs here, so
    /// the outbox is left for the node's next start.
    pub fn open_local(data: &Path, writes: bool) -> Result<Target> {
        let mut config = NodeConfig::new(data);
        config.create = false;
        config.mode = if writes {
            OpenMode::Maintain
        } else {
            OpenMode::Inspect
        };
        // A tool needs little cache; a running node's setting is not ours to copy.
        config.block_cache_bytes = 32 << 20;
        Ok(Target::Local(Box::new(Node::open(config)?)))
    }

    /// Closes a local node cleanly (flushes), so the next opener finds no WAL to replay.
    pub fn close(self) -> Result<()> {
        match self {
            Target::Remote(_) => Ok(()),
            Target::Local(node) => Ok(node.close()?),
        }
    }

    /// The node's statistics.
    pub fn status(&self) -> Result<NodeStats> {
        match self {
            Target::Remote(r) => r.call("GET", "/status", None),
            Target::Local(n) => Ok(n.stats()?),
        }
    }

    /// Compacts one shard or all, reporting progress as it goes.
    pub fn compact(
        &self,
        shard: Option<usize>,
        progress: &mut dyn FnMut(&CompactProgress),
    ) -> Result<CompactReport> {
        match self {
            Target::Local(n) => Ok(n.compact(shard, progress)?),
            Target::Remote(r) => {
                let _: CompactJob = r.call("POST", "/compact", Some(json!({ "shard": shard })))?;
                // The node compacts on its own thread; poll it for progress.
                loop {
                    std::thread::sleep(Duration::from_millis(200));
                    let job: CompactJob = r.call("GET", "/compact", None)?;
                    if let Some(p) = &job.progress {
                        progress(p);
                    }
                    if !job.running {
                        return match (job.report, job.error) {
                            (Some(report), _) => Ok(report),
                            (None, Some(e)) => {
                                Err(Error::Invalid(format!("compaction failed: {e}")))
                            }
                            (None, None) => Err(Error::Invalid(
                                "the compaction ended without a report".into(),
                            )),
                        };
                    }
                }
            }
        }
    }

    /// Writes a checkpoint to `dir` (on the node's machine when remote).
    pub fn checkpoint(&self, dir: &Path) -> Result<BackupReport> {
        match self {
            Target::Local(n) => Ok(n.checkpoint(dir)?),
            Target::Remote(r) => {
                // The node resolves the path, so a relative one would land in its cwd.
                let dir = absolute(dir)?;
                r.call("POST", "/checkpoint", Some(json!({ "dir": dir })))
            }
        }
    }

    /// Walks every shard and checks the invariants.
    pub fn verify(&self, progress: &mut dyn FnMut(usize)) -> Result<VerifyReport> {
        match self {
            Target::Local(n) => Ok(n.verify(progress)?),
            Target::Remote(r) => r.call("POST", "/verify", None),
        }
    }

    /// Creates an account.
    pub fn create_user(&self, new: NewUser) -> Result<Account> {
        match self {
            Target::Local(n) => Ok(Account::from(&n.sign_up(new)?)),
            Target::Remote(r) => r.call(
                "POST",
                "/users",
                Some(json!({
                    "handle": new.handle,
                    "password": new.password,
                    "display_name": new.display_name,
                })),
            ),
        }
    }

    /// An account by id or handle.
    pub fn user(&self, user: &str) -> Result<Account> {
        match self {
            Target::Local(n) => Ok(Account::from(&n.profile(n.resolve_user(&user_ref(user))?)?)),
            Target::Remote(r) => r.call("GET", &format!("/users/{}", user_ref(user)), None),
        }
    }

    /// Suspends or reinstates an account.
    pub fn set_suspended(&self, user: &str, suspended: bool) -> Result<Account> {
        match self {
            Target::Local(n) => {
                let id = n.resolve_user(&user_ref(user))?;
                Ok(Account::from(&n.set_suspended(id, suspended)?))
            }
            Target::Remote(r) => {
                let action = if suspended { "suspend" } else { "unsuspend" };
                r.call("POST", &format!("/users/{}/{action}", user_ref(user)), None)
            }
        }
    }

    /// Sets a new password, revoking the user's sessions.
    pub fn reset_password(&self, user: &str, password: &str) -> Result<PasswordReset> {
        match self {
            Target::Local(n) => {
                let id = n.resolve_user(&user_ref(user))?;
                Ok(PasswordReset {
                    revoked_tokens: n.reset_password(id, password)?,
                })
            }
            Target::Remote(r) => r.call(
                "POST",
                &format!("/users/{}/password", user_ref(user)),
                Some(json!({ "password": password })),
            ),
        }
    }

    /// Mints a bearer token for a user.
    pub fn mint_token(&self, user: &str) -> Result<MintedToken> {
        match self {
            Target::Local(n) => {
                let session = n.mint_token(n.resolve_user(&user_ref(user))?)?;
                Ok(MintedToken {
                    token: session.token,
                    user_id: session.user_id,
                })
            }
            Target::Remote(r) => r.call("POST", &format!("/users/{}/tokens", user_ref(user)), None),
        }
    }
}

/// `dir` made absolute against the current directory.
pub fn absolute(dir: &Path) -> Result<PathBuf> {
    Ok(std::path::absolute(dir)?)
}

/// Serializes any report for `--json`.
pub fn to_json<T: Serialize>(value: &T) -> Result<String> {
    Ok(serde_json::to_string_pretty(value)?)
}
