//! Walks every shard and checks the invariants the write paths maintain, reporting each
//! violation. Run on a stopped node (or a quiet one): on a busy node a write that spans two
//! shards can be seen half-done and reported.
//!
//! The invariants:
//! - every `tweets` row decodes, lives on its id's shard, and has its `user_tweets` row;
//! - every `user_tweets` row has its tweet;
//! - the `counters` equal the rows they count (tweets, following, followers);
//! - `following[(a, b)]` and `followers[(b, a)]` come in pairs, and both users exist;
//! - every handle points at a profile with that handle, and profiles decode on their shard;
//! - every `home` row's owner and author exist (its tweet may be gone: deletes are lazy);
//! - the shard's hashtag index holds exactly its tweets: each tweet is indexed, and the
//!   index has no entries beyond them (entries of deleted tweets are removed on delete).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::doc::{self, ProfileDoc, TweetDoc};
use crate::error::Result;
use crate::ids;
use crate::keys::{
    self, Counter, CF_COUNTERS, CF_FOLLOWERS, CF_FOLLOWING, CF_HANDLES, CF_HOME, CF_OUTBOX,
    CF_PROFILES, CF_TWEETS, CF_USER_TWEETS,
};
use crate::node::Inner;
use crate::shard::Shard;

/// Findings kept in a report; past this only the count goes on.
const MAX_FINDINGS: usize = 1000;

/// One violated invariant.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Finding {
    /// The shard where it was found.
    pub shard: usize,
    /// Which check failed, a stable slug such as `timeline-row-without-tweet`.
    pub check: String,
    /// What exactly is wrong, naming the ids.
    pub detail: String,
}

/// What a verification walked and found.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct VerifyReport {
    /// Shards walked.
    pub shards: usize,
    /// Profiles seen.
    pub users: u64,
    /// Tweets seen.
    pub tweets: u64,
    /// Follow edges seen (`following` rows).
    pub edges: u64,
    /// Home-feed rows seen.
    pub home_rows: u64,
    /// Fan-out jobs still in the outbox (not damage: they run when the node does).
    pub pending_fanout: u64,
    /// Violations found in all, including those past the kept list.
    pub problems: u64,
    /// The first violations found.
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    /// Whether the store is intact.
    pub fn ok(&self) -> bool {
        self.problems == 0
    }

    fn report(&mut self, shard: usize, check: &str, detail: String) {
        self.problems += 1;
        if self.findings.len() < MAX_FINDINGS {
            self.findings.push(Finding {
                shard,
                check: check.to_string(),
                detail,
            });
        }
    }
}

/// Remembers which users exist, so rows naming the same user cost one lookup.
struct Users<'a> {
    inner: &'a Inner,
    known: HashMap<u64, bool>,
}

impl Users<'_> {
    fn exists(&mut self, user: u64) -> Result<bool> {
        if let Some(&known) = self.known.get(&user) {
            return Ok(known);
        }
        let exists = self
            .inner
            .user_shard(user)?
            .contains(CF_PROFILES, &keys::id_key(user))?;
        self.known.insert(user, exists);
        Ok(exists)
    }
}

impl Inner {
    /// Checks every invariant on every shard; `progress` is called with each shard's index
    /// once it is done.
    pub fn verify(&self, progress: &mut dyn FnMut(usize)) -> Result<VerifyReport> {
        let mut report = VerifyReport {
            shards: self.placement.local_ids().len(),
            ..VerifyReport::default()
        };
        let mut users = Users {
            inner: self,
            known: HashMap::new(),
        };
        for shard in self.placement.local() {
            self.verify_shard(shard, &mut report, &mut users)?;
            progress(shard.index());
        }
        Ok(report)
    }

    fn verify_shard(&self, shard: &Shard, r: &mut VerifyReport, users: &mut Users) -> Result<()> {
        let s = shard.index();
        // Rows counted per (user, counter kind), compared with `counters` at the end.
        let mut counted: HashMap<(u64, u8), i64> = HashMap::new();

        shard.for_each(CF_PROFILES, |key, value| {
            r.users += 1;
            let id = keys::decode_id(key);
            match doc::decode::<ProfileDoc>(value) {
                Err(e) => r.report(s, "profile-undecodable", format!("{key:?}: {e}")),
                Ok(p) if Some(p.id) != id => r.report(
                    s,
                    "profile-id-mismatch",
                    format!("row {id:?} holds user {}", p.id),
                ),
                Ok(p) if self.placement.of_user(p.id) != s => r.report(
                    s,
                    "profile-wrong-shard",
                    format!(
                        "user {} belongs on shard {}",
                        p.id,
                        self.placement.of_user(p.id)
                    ),
                ),
                Ok(_) => {}
            }
            Ok(())
        })?;

        shard.for_each(CF_HANDLES, |key, value| {
            if let Some(email) = keys::decode_email_key(key) {
                self.verify_email_row(s, email, value, r);
                return Ok(());
            }
            let handle = String::from_utf8_lossy(key).into_owned();
            let Some(id) = keys::decode_id(value) else {
                r.report(s, "handle-undecodable", format!("@{handle}"));
                return Ok(());
            };
            match self.profile_doc(id) {
                Ok(Some(p)) if p.handle.to_ascii_lowercase() == handle => {}
                Ok(Some(p)) => r.report(
                    s,
                    "handle-mismatch",
                    format!(
                        "@{handle} points at user {id}, whose handle is @{}",
                        p.handle
                    ),
                ),
                Ok(None) => r.report(
                    s,
                    "handle-dangling",
                    format!("@{handle} points at user {id}, who does not exist"),
                ),
                Err(e) => r.report(s, "profile-undecodable", format!("user {id}: {e}")),
            }
            Ok(())
        })?;

        // The index lock is taken per tweet, never across the scan: posts and searches keep
        // going while a shard is verified.
        let index = || {
            self.hashtags
                .index(s)?
                .read()
                .map_err(|_| crate::error::Error::Storage("hashtag index lock poisoned".into()))
        };
        let mut shard_tweets = 0u64;
        shard.for_each(CF_TWEETS, |key, value| {
            r.tweets += 1;
            shard_tweets += 1;
            let id = keys::decode_id(key).unwrap_or_default();
            let tweet = match doc::decode::<TweetDoc>(value) {
                Ok(t) => t,
                Err(e) => {
                    r.report(s, "tweet-undecodable", format!("tweet {id}: {e}"));
                    return Ok(());
                }
            };
            if tweet.id != id || ids::shard_of_id(id) != s {
                r.report(
                    s,
                    "tweet-misplaced",
                    format!("row {id} holds tweet {} on shard {s}", tweet.id),
                );
            }
            if !shard.contains(CF_USER_TWEETS, &keys::pair_key(tweet.author_id, id))? {
                r.report(
                    s,
                    "tweet-without-timeline-row",
                    format!(
                        "tweet {id} is missing from user {}'s timeline",
                        tweet.author_id
                    ),
                );
            }
            if !index()?.contains(id) {
                r.report(
                    s,
                    "tweet-not-indexed",
                    format!("tweet {id} is missing from the hashtag index"),
                );
            }
            if !users.exists(tweet.author_id)? {
                r.report(
                    s,
                    "tweet-author-missing",
                    format!("tweet {id}'s author {} does not exist", tweet.author_id),
                );
            }
            Ok(())
        })?;

        let indexed = index()?.len() as u64;
        if indexed > shard_tweets {
            r.report(
                s,
                "index-entry-without-tweet",
                format!(
                    "the hashtag index holds {indexed} tweets but the shard {shard_tweets}: \
                     {} index entries name no tweet",
                    indexed - shard_tweets
                ),
            );
        }

        shard.for_each(CF_USER_TWEETS, |key, _| {
            let Some((user, tweet)) = keys::decode_pair(key) else {
                r.report(s, "key-undecodable", format!("user_tweets {key:?}"));
                return Ok(());
            };
            *counted.entry((user, Counter::Tweets as u8)).or_default() += 1;
            if !shard.contains(CF_TWEETS, &keys::id_key(tweet))? {
                r.report(
                    s,
                    "timeline-row-without-tweet",
                    format!("user {user}'s timeline lists tweet {tweet}, which does not exist"),
                );
            }
            Ok(())
        })?;

        shard.for_each(CF_FOLLOWING, |key, _| {
            let Some((a, b)) = keys::decode_pair(key) else {
                r.report(s, "key-undecodable", format!("following {key:?}"));
                return Ok(());
            };
            r.edges += 1;
            *counted.entry((a, Counter::Following as u8)).or_default() += 1;
            if !self
                .user_shard(b)?
                .contains(CF_FOLLOWERS, &keys::pair_key(b, a))?
            {
                r.report(
                    s,
                    "following-without-follower-row",
                    format!("{a} follows {b}, but {b}'s followers lack {a}"),
                );
            }
            if !users.exists(b)? {
                r.report(
                    s,
                    "edge-user-missing",
                    format!("{a} follows {b}, who does not exist"),
                );
            }
            Ok(())
        })?;

        shard.for_each(CF_FOLLOWERS, |key, _| {
            let Some((b, a)) = keys::decode_pair(key) else {
                r.report(s, "key-undecodable", format!("followers {key:?}"));
                return Ok(());
            };
            *counted.entry((b, Counter::Followers as u8)).or_default() += 1;
            if !self
                .user_shard(a)?
                .contains(CF_FOLLOWING, &keys::pair_key(a, b))?
            {
                r.report(
                    s,
                    "follower-without-following-row",
                    format!("{b}'s followers list {a}, but {a} does not follow {b}"),
                );
            }
            if !users.exists(a)? {
                r.report(
                    s,
                    "edge-user-missing",
                    format!("{b}'s follower {a} does not exist"),
                );
            }
            Ok(())
        })?;

        shard.for_each(CF_COUNTERS, |key, value| {
            let Some((user, kind)) = keys::decode_counter(key) else {
                r.report(s, "key-undecodable", format!("counters {key:?}"));
                return Ok(());
            };
            let stored = keys::decode_counter_value(value);
            let actual = counted.remove(&(user, kind)).unwrap_or(0);
            if stored != actual {
                r.report(
                    s,
                    "counter-mismatch",
                    format!(
                        "user {user}'s {} counter is {stored}, but {actual} rows exist",
                        counter_name(kind)
                    ),
                );
            }
            Ok(())
        })?;
        // Rows whose counter row is missing altogether.
        for ((user, kind), actual) in counted {
            r.report(
                s,
                "counter-mismatch",
                format!(
                    "user {user}'s {} counter is missing, but {actual} rows exist",
                    counter_name(kind)
                ),
            );
        }

        shard.for_each(CF_HOME, |key, value| {
            r.home_rows += 1;
            let (Some((owner, tweet)), Some(author)) =
                (keys::decode_pair(key), keys::decode_id(value))
            else {
                r.report(s, "key-undecodable", format!("home {key:?}"));
                return Ok(());
            };
            if !users.exists(owner)? {
                r.report(
                    s,
                    "home-owner-missing",
                    format!("home feed of {owner} (tweet {tweet}) belongs to no user"),
                );
            }
            if !users.exists(author)? {
                r.report(
                    s,
                    "home-author-missing",
                    format!("{owner}'s feed lists tweet {tweet} by {author}, who does not exist"),
                );
            }
            Ok(())
        })?;

        shard.for_each(CF_OUTBOX, |_, _| {
            r.pending_fanout += 1;
            Ok(())
        })?;
        Ok(())
    }

    /// An e-mail row points at a user who signed up with that address.
    fn verify_email_row(&self, s: usize, email: &[u8], value: &[u8], r: &mut VerifyReport) {
        let email = String::from_utf8_lossy(email).into_owned();
        let Some(id) = keys::decode_id(value) else {
            r.report(s, "email-undecodable", email);
            return;
        };
        match (self.profile_doc(id), self.email_of(id)) {
            (Ok(Some(_)), Ok(Some(own))) if own.eq_ignore_ascii_case(&email) => {}
            (Ok(None), _) => r.report(
                s,
                "email-dangling",
                format!("{email} points at user {id}, who does not exist"),
            ),
            (Ok(Some(_)), Ok(own)) => r.report(
                s,
                "email-mismatch",
                format!("{email} points at user {id}, whose address is {own:?}"),
            ),
            (Err(e), _) | (_, Err(e)) => {
                r.report(s, "profile-undecodable", format!("user {id}: {e}"))
            }
        }
    }
}

fn counter_name(kind: u8) -> &'static str {
    match kind {
        k if k == Counter::Followers as u8 => "followers",
        k if k == Counter::Following as u8 => "following",
        k if k == Counter::Tweets as u8 => "tweets",
        _ => "unknown",
    }
}
