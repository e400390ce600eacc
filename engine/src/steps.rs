//! Shard steps: what one shard answers for the services of any node.
//!
//! An operation that spans shards (a follow's two sides, a sign-up's handle claim, a fan-out's
//! feed rows, hydrating a tweet, a celebrity's recent tweets) is a sequence of steps, each on
//! one shard and each idempotent, so a retry after a crash between two of them completes the
//! operation without doing any part twice. A step on a shard this node holds runs here; one on
//! a shard held elsewhere goes through the node's [`Remote`] (the server ships it to the
//! shard's owner, whose [`Inner::run_step`] runs it). Without a `Remote` (a standalone node)
//! such a step is [`Error::NotHere`].
//!
//! Steps and replies are serde values so they can travel; the in-process tests route them
//! between nodes directly.

use std::cell::Cell;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::accounts::Name;
use crate::batch::Batch;
use crate::doc::TweetDoc;
use crate::error::{Error, Result};
use crate::keys::{self, Counter, CF_COUNTERS, CF_FOLLOWERS, CF_HOME, CF_TWEETS, CF_USER_TWEETS};
use crate::model::Profile;
use crate::node::Inner;
use crate::placement::ShardId;
use crate::search::TagQuery;

/// One shard-local operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// The user a lowercase handle points at.
    HandleOwner {
        /// The handle, lowercase.
        handle: String,
    },
    /// Points a lowercase handle at a user unless another holds it (a conflict).
    ClaimHandle {
        /// The handle, lowercase.
        handle: String,
        /// The claiming user.
        user: u64,
    },
    /// The user a lowercase e-mail address points at.
    EmailOwner {
        /// The address, lowercase.
        email: String,
    },
    /// Points a lowercase e-mail address at a user unless another holds it (a conflict).
    ClaimEmail {
        /// The address, lowercase.
        email: String,
        /// The claiming user.
        user: u64,
    },
    /// Frees an e-mail address if it still points at `user` (a failed sign-up's undo).
    ReleaseEmail {
        /// The address, lowercase.
        email: String,
        /// The user it must point at.
        user: u64,
    },
    /// Stores a registered client application.
    PutApp {
        /// The application.
        app: Box<crate::doc::AppDoc>,
    },
    /// A registered client application, by client id.
    App {
        /// Its client id.
        client_id: String,
    },
    /// The newest tweets of a shard, below `before`: a public timeline's candidates.
    ShardTweets {
        /// The shard.
        shard: ShardId,
        /// Exclusive upper bound.
        before: u64,
        /// How many at most.
        want: usize,
    },
    /// Hashtags in use on a shard that start with a (normalized) prefix.
    TagNames {
        /// The shard.
        shard: ShardId,
        /// The prefix, normalized.
        prefix: String,
        /// How many at most.
        limit: usize,
    },
    /// A user's profile with its counters.
    Profile {
        /// The user.
        user: u64,
    },
    /// A tweet's document.
    Tweet {
        /// The tweet.
        id: u64,
    },
    /// The followee's side of a follow: the `followers` row and the follower count.
    AddFollower {
        /// Who is followed.
        followee: u64,
        /// Who follows.
        follower: u64,
    },
    /// The followee's side of an unfollow.
    RemoveFollower {
        /// Who was followed.
        followee: u64,
        /// Who stops following.
        follower: u64,
    },
    /// Up to `limit` of a user's tweet ids older than `before`, newest first.
    RecentTweets {
        /// The author.
        user: u64,
        /// Exclusive upper bound.
        before: u64,
        /// At most this many.
        limit: usize,
    },
    /// A page of a user's followers (`followers`) or followees, by ascending user id after
    /// `after`.
    UserList {
        /// The user.
        user: u64,
        /// Followers (true) or followees (false).
        followers: bool,
        /// Exclusive lower bound.
        after: Option<u64>,
        /// At most this many.
        limit: usize,
    },
    /// Up to `want` ids of a shard's tweets matching a hashtag query, older than `before`,
    /// newest first.
    Search {
        /// The shard asked.
        shard: ShardId,
        /// The query.
        query: TagQuery,
        /// Exclusive upper bound.
        before: u64,
        /// At most this many.
        want: usize,
    },
    /// The celebrities among a shard's users (for feeds read on other nodes).
    Celebrities {
        /// The shard asked.
        shard: ShardId,
    },
    /// A fan-out's feed rows for followers on one shard, written durably: a post's rows
    /// added (`adding`) or a deleted tweet's removed.
    HomeRows {
        /// The tweet.
        tweet: u64,
        /// Its author.
        author: u64,
        /// Add (a post) or remove (a delete).
        adding: bool,
        /// Followers on the step's shard.
        followers: Vec<u64>,
    },
}

/// What a step answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", content = "value", rename_all = "snake_case")]
pub enum Reply {
    /// Done; nothing to return.
    Done,
    /// A user id, or none.
    User(Option<u64>),
    /// A profile, or none.
    Profile(Option<Box<Profile>>),
    /// A tweet, or none.
    Tweet(Option<Box<TweetDoc>>),
    /// Tweet ids, newest first.
    Ids(Vec<u64>),
    /// A client application, or none.
    App(Option<Box<crate::doc::AppDoc>>),
    /// Names, in order.
    Names(Vec<String>),
}

impl Reply {
    fn mismatch(self) -> Error {
        Error::Storage(format!("a shard step got an unexpected reply: {self:?}"))
    }

    /// The reply of a step answering "done".
    pub(crate) fn done(self) -> Result<()> {
        match self {
            Reply::Done => Ok(()),
            other => Err(other.mismatch()),
        }
    }

    pub(crate) fn user(self) -> Result<Option<u64>> {
        match self {
            Reply::User(u) => Ok(u),
            other => Err(other.mismatch()),
        }
    }

    pub(crate) fn profile(self) -> Result<Option<Profile>> {
        match self {
            Reply::Profile(p) => Ok(p.map(|p| *p)),
            other => Err(other.mismatch()),
        }
    }

    pub(crate) fn tweet(self) -> Result<Option<TweetDoc>> {
        match self {
            Reply::Tweet(t) => Ok(t.map(|t| *t)),
            other => Err(other.mismatch()),
        }
    }

    pub(crate) fn app(self) -> Result<Option<crate::doc::AppDoc>> {
        match self {
            Reply::App(a) => Ok(a.map(|a| *a)),
            other => Err(other.mismatch()),
        }
    }

    pub(crate) fn names(self) -> Result<Vec<String>> {
        match self {
            Reply::Names(n) => Ok(n),
            other => Err(other.mismatch()),
        }
    }

    pub(crate) fn ids(self) -> Result<Vec<u64>> {
        match self {
            Reply::Ids(ids) => Ok(ids),
            other => Err(other.mismatch()),
        }
    }
}

/// A step's failure as it travels back to the node that sent it: the engine error's kind, so
/// a conflict stays a conflict and a shard held elsewhere stays [`Error::NotHere`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepFailure {
    /// `invalid`, `not_found`, `conflict`, `forbidden`, `not_primary`, `not_here`,
    /// `unavailable` or `failed`.
    pub kind: String,
    /// The field or thing named, for the kinds that name one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For people.
    pub message: String,
    /// The shard, for `not_here`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<usize>,
}

/// Names a failure may carry, as the `&'static str` the engine's errors hold; an unknown one
/// (from a newer peer) reads as a generic name.
const NAMES: &[&str] = &[
    "user",
    "tweet",
    "media",
    "handle",
    "email",
    "client_id",
    "shard",
    "followers",
    "id",
    "hashtag",
    "all",
    "any",
    "image file on this replica",
];

fn static_name(name: Option<&str>, otherwise: &'static str) -> &'static str {
    name.and_then(|n| NAMES.iter().copied().find(|k| *k == n))
        .unwrap_or(otherwise)
}

impl StepFailure {
    /// The wire form of an engine error.
    pub fn from_error(e: &Error) -> Self {
        let (kind, field, shard) = match e {
            Error::Invalid { field, .. } => ("invalid", Some(*field), None),
            Error::NotFound(what) => ("not_found", Some(*what), None),
            Error::Conflict { field, .. } => ("conflict", Some(*field), None),
            Error::Forbidden(_) => ("forbidden", None, None),
            Error::NotPrimary(_) => ("not_primary", None, None),
            Error::NotHere(s) => ("not_here", None, Some(*s)),
            Error::Unavailable(_) | Error::WouldBlock => ("unavailable", None, None),
            _ => ("failed", None, None),
        };
        let message = match e {
            Error::Invalid { message, .. } | Error::Conflict { message, .. } => message.clone(),
            Error::NotPrimary(hint) | Error::Unavailable(hint) => hint.clone(),
            other => other.to_string(),
        };
        StepFailure {
            kind: kind.into(),
            field: field.map(str::to_string),
            message,
            shard,
        }
    }

    /// The engine error it stands for.
    pub fn into_error(self) -> Error {
        let field = self.field.as_deref();
        match self.kind.as_str() {
            "invalid" => Error::Invalid {
                field: static_name(field, "request"),
                message: self.message,
            },
            "not_found" => Error::NotFound(static_name(field, "item")),
            "conflict" => Error::Conflict {
                field: static_name(field, "request"),
                message: self.message,
            },
            "forbidden" => Error::Forbidden("not allowed"),
            "not_primary" => Error::NotPrimary(self.message),
            "not_here" => Error::NotHere(self.shard.unwrap_or_default()),
            "unavailable" => Error::Unavailable(self.message),
            _ => Error::Storage(format!("a shard step failed on its node: {}", self.message)),
        }
    }
}

/// Runs steps on shards held by other nodes.
pub trait Remote: Send + Sync {
    /// Runs `step` on `shard` where that shard is held (its primary, for a step that writes).
    fn run(&self, shard: ShardId, step: &Step) -> Result<Reply>;
}

thread_local! {
    static STALE_READS: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with reads of the shards this node holds as a replica answered from its own
/// copy, which may lag the primary by what replication has not yet brought: for clients that
/// ask for it (`Chirp-Read: stale`) and prefer a nearby answer, or one while the primary is
/// unreachable. Writes still go to the primary.
pub fn stale_reads<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            STALE_READS.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(STALE_READS.with(|c| c.replace(true)));
    f()
}

impl Step {
    /// Whether the step writes, so must run on the shard's primary.
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Step::ClaimHandle { .. }
                | Step::ClaimEmail { .. }
                | Step::ReleaseEmail { .. }
                | Step::PutApp { .. }
                | Step::AddFollower { .. }
                | Step::RemoveFollower { .. }
                | Step::HomeRows { .. }
        )
    }
}

impl Inner {
    /// The shard a step belongs on.
    fn step_shard(&self, step: &Step) -> Result<ShardId> {
        let p = &self.placement;
        Ok(match step {
            Step::HandleOwner { handle } | Step::ClaimHandle { handle, .. } => p.of_handle(handle),
            Step::EmailOwner { email }
            | Step::ClaimEmail { email, .. }
            | Step::ReleaseEmail { email, .. } => p.of_email(email),
            Step::PutApp { app } => p.of_app(&app.client_id),
            Step::App { client_id } => p.of_app(client_id),
            Step::Profile { user }
            | Step::RecentTweets { user, .. }
            | Step::UserList { user, .. } => p.of_user(*user),
            Step::Tweet { id } => p.of_id(*id).ok_or(Error::NotFound("tweet"))?,
            Step::AddFollower { followee, .. } | Step::RemoveFollower { followee, .. } => {
                p.of_user(*followee)
            }
            Step::Celebrities { shard }
            | Step::Search { shard, .. }
            | Step::ShardTweets { shard, .. }
            | Step::TagNames { shard, .. }
                if *shard < p.count() =>
            {
                *shard
            }
            Step::Celebrities { shard }
            | Step::Search { shard, .. }
            | Step::ShardTweets { shard, .. }
            | Step::TagNames { shard, .. } => {
                return Err(Error::invalid("shard", format!("no shard {shard}")))
            }
            Step::HomeRows { followers, .. } => {
                let s = followers
                    .first()
                    .map(|&f| p.of_user(f))
                    .ok_or_else(|| Error::invalid("followers", "no follower"))?;
                if followers.iter().any(|&f| p.of_user(f) != s) {
                    return Err(Error::invalid("followers", "followers of several shards"));
                }
                s
            }
        })
    }

    /// Runs a step where its shard's primary is: here if this node is it, else through the
    /// node's [`Remote`]. Reads go to the primary too, so a user reads what they just wrote
    /// (a replica copy may lag); a primary fenced for a handover still answers them (its log
    /// is final). Without a Remote (a standalone node), a held copy answers, and refuses a
    /// write itself when it is a replica.
    pub(crate) fn step(&self, step: Step) -> Result<Reply> {
        let shard = self.step_shard(&step)?;
        let held = self.placement.holds(shard);
        if self.is_primary_of(shard)
            || (held && self.remote.get().is_none())
            || (!step.writes() && self.reads_here(shard))
        {
            return self.run_local(shard, step);
        }
        // Another node is a network round trip: never on a thread that must not block (the
        // caller redoes the request where blocking is fine).
        if crate::shard::in_cache_only() {
            return Err(Error::WouldBlock);
        }
        match self.remote.get() {
            Some(remote) => remote.run(shard, &step),
            None => Err(Error::NotHere(shard)),
        }
    }

    /// Whether reads of `shard` are answered from this node's copy: it is the primary (or
    /// was, fenced for a handover: its log is final), or a standalone node holds it. A
    /// replica copy on a cluster node may lag, so reads go to the primary (a user reads
    /// what they just wrote, through any node), unless the caller runs in [`stale_reads`].
    pub(crate) fn reads_here(&self, shard: ShardId) -> bool {
        let primary = self.is_primary_of(shard) || self.is_fenced(shard);
        // A primary whose lease may have lapsed reads through `step`, which refuses.
        (primary && self.shared().lease_held())
            || (self.placement.holds(shard)
                && (self.remote.get().is_none() || STALE_READS.with(Cell::get)))
    }

    /// Refuses (503) an answer from this node's primary copy of `shard` while the node's
    /// cluster lease may have lapsed, unless the caller asked for stale reads: past it,
    /// another copy may have been made primary and taken writes this one lacks. (Writes
    /// are refused at the shard's gate as well.)
    pub(crate) fn check_lease_of(&self, shard: ShardId) -> Result<()> {
        if (self.is_primary_of(shard) || self.is_fenced(shard)) && !STALE_READS.with(Cell::get) {
            self.shared().check_lease()?;
        }
        Ok(())
    }

    /// Runs a step another node sent for `shard`, which must be the step's shard and held
    /// here.
    pub fn run_step(&self, shard: ShardId, step: Step) -> Result<Reply> {
        let belongs = self.step_shard(&step)?;
        if belongs != shard {
            return Err(Error::invalid(
                "shard",
                format!("this step belongs on shard {belongs}, not {shard}"),
            ));
        }
        // A shard not held here is refused by the placement lookups (NotHere).
        self.run_local(shard, step)
    }

    /// Learns the celebrities of the shards held elsewhere, so feeds read here merge their
    /// tweets (they are not fanned out). Called every few seconds while a [`Remote`] is set;
    /// a shard that cannot be asked keeps what was known of it.
    pub(crate) fn refresh_remote_celebrities(&self) {
        if self.remote.get().is_none() {
            return;
        }
        for s in 0..self.placement.count() {
            if self.placement.holds(s) {
                continue;
            }
            match self
                .step(Step::Celebrities { shard: s })
                .and_then(Reply::ids)
            {
                Ok(ids) => self.celebrities.learn(&self.placement, s, ids),
                Err(e) => tracing::debug!(shard = s, error = %e, "celebrities not refreshed"),
            }
        }
    }

    /// Installs how steps reach shards held elsewhere (once; later calls are ignored).
    pub fn set_remote(&self, remote: Arc<dyn Remote>) {
        let _ = self.remote.set(remote);
    }

    fn run_local(&self, s: ShardId, step: Step) -> Result<Reply> {
        self.check_lease_of(s)?;
        let shard = self.placement.shard(s)?;
        Ok(match step {
            Step::HandleOwner { handle } => {
                Reply::User(self.local_name_owner(Name::Handle(&handle))?)
            }
            Step::ClaimHandle { handle, user } => {
                self.local_claim(Name::Handle(&handle), user)?;
                Reply::Done
            }
            Step::EmailOwner { email } => Reply::User(self.local_name_owner(Name::Email(&email))?),
            Step::ClaimEmail { email, user } => {
                self.local_claim(Name::Email(&email), user)?;
                Reply::Done
            }
            Step::ReleaseEmail { email, user } => {
                self.local_release(Name::Email(&email), user)?;
                Reply::Done
            }
            Step::PutApp { app } => {
                self.local_put_app(&app)?;
                Reply::Done
            }
            Step::App { client_id } => Reply::App(self.local_app(&client_id)?.map(Box::new)),
            Step::Profile { user } => Reply::Profile(
                self.profile_doc(user)?
                    .map(|d| self.profile_view(d))
                    .transpose()?
                    .map(Box::new),
            ),
            Step::Tweet { id } => Reply::Tweet(
                shard
                    .get(CF_TWEETS, &keys::id_key(id))?
                    .map(|bytes| crate::doc::decode::<TweetDoc>(&bytes))
                    .transpose()?
                    .map(Box::new),
            ),
            Step::AddFollower { followee, follower } => {
                let key = keys::pair_key(followee, follower);
                if !shard.contains(CF_FOLLOWERS, &key)? {
                    let mut batch = Batch::new();
                    batch.put(CF_FOLLOWERS, key, []);
                    batch.merge(
                        CF_COUNTERS,
                        keys::counter_key(followee, Counter::Followers),
                        keys::counter_value(1),
                    );
                    shard.write(batch)?;
                    self.celebrities
                        .note(followee, self.counter(followee, Counter::Followers)?);
                }
                Reply::Done
            }
            Step::RemoveFollower { followee, follower } => {
                let key = keys::pair_key(followee, follower);
                if shard.contains(CF_FOLLOWERS, &key)? {
                    let mut batch = Batch::new();
                    batch.delete(CF_FOLLOWERS, key);
                    batch.merge(
                        CF_COUNTERS,
                        keys::counter_key(followee, Counter::Followers),
                        keys::counter_value(-1),
                    );
                    shard.write(batch)?;
                    self.celebrities
                        .note(followee, self.counter(followee, Counter::Followers)?);
                }
                Reply::Done
            }
            Step::RecentTweets {
                user,
                before,
                limit,
            } => Reply::Ids(
                shard
                    .scan_pairs_rev(CF_USER_TWEETS, user, before, limit.min(MAX_RECENT))?
                    .into_iter()
                    .map(|(tweet, _)| tweet)
                    .collect(),
            ),
            Step::UserList {
                user,
                followers,
                after,
                limit,
            } => {
                let cf = if followers {
                    crate::keys::CF_FOLLOWERS
                } else {
                    crate::keys::CF_FOLLOWING
                };
                Reply::Ids(
                    shard
                        .scan_pairs(cf, user, after, limit.min(MAX_RECENT))?
                        .into_iter()
                        .map(|(id, _)| id)
                        .collect(),
                )
            }
            Step::Search {
                shard,
                query,
                before,
                want,
            } => Reply::Ids(self.hashtags.candidates(
                &[shard],
                &crate::search::parse(query)?,
                before,
                want.min(MAX_RECENT),
            )?),
            Step::TagNames {
                shard,
                prefix,
                limit,
            } => Reply::Names(self.hashtags.tag_names(
                &[shard],
                &prefix,
                limit.min(crate::model::MAX_LIMIT),
            )?),
            Step::ShardTweets { before, want, .. } => {
                Reply::Ids(shard.ids_rev(CF_TWEETS, before, want.min(MAX_RECENT))?)
            }
            Step::Celebrities { shard } => {
                Reply::Ids(self.celebrities.of_shard(&self.placement, shard))
            }
            Step::HomeRows {
                tweet,
                author,
                adding,
                followers,
            } => {
                let mut batch = Batch::new();
                for &follower in &followers {
                    let key = keys::pair_key(follower, tweet);
                    if adding {
                        batch.put(CF_HOME, key, keys::id_key(author));
                    } else {
                        batch.delete(CF_HOME, key);
                    }
                }
                // Synced: the sender drops its outbox row once this answers.
                shard.write(batch)?;
                if adding {
                    for &follower in &followers {
                        crate::fanout::count_insert(self, follower)?;
                    }
                }
                Reply::Done
            }
        })
    }
}

/// Most ids one `RecentTweets` step returns.
const MAX_RECENT: usize = 1_000;
