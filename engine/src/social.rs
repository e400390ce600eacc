//! The follow graph: follow, unfollow and the two lists.
//!
//! An edge is two rows on (usually) two shards: `following[(a, b)]` on a's shard and
//! `followers[(b, a)]` on b's, which may be on another node (the `AddFollower` and
//! `RemoveFollower` [`Step`]s). Each side is written with its counter in one batch and only
//! if its row is missing (or present, to unfollow), under a's lock, so retrying after a crash
//! between the two sides completes the edge without counting it twice.

use crate::batch::Batch;

use crate::error::{Error, Result};
use crate::keys::{self, Counter, CF_COUNTERS, CF_FOLLOWERS, CF_FOLLOWING, CF_HOME};
use crate::model::{encode_cursor, Page, PageRequest, Profile};
use crate::node::Inner;
use crate::steps::Step;

impl Inner {
    /// `actor` makes `follower` follow `followee`; only users may act for themselves.
    /// Idempotent. Back-fills the followee's recent tweets into the follower's feed.
    pub fn follow(&self, actor: u64, follower: u64, followee: u64) -> Result<()> {
        self.check_edge(actor, follower, followee)?;
        let _guard = self.lock_user(follower);
        self.step(Step::AddFollower { followee, follower })?
            .done()?;
        let mine = self.user_shard(follower)?;
        if !mine.contains(CF_FOLLOWING, &keys::pair_key(follower, followee))? {
            let mut batch = Batch::new();
            batch.put(CF_FOLLOWING, keys::pair_key(follower, followee), []);
            batch.merge(
                CF_COUNTERS,
                keys::counter_key(follower, Counter::Following),
                keys::counter_value(1),
            );
            // Celebrities' tweets are merged at read time, so they need no back-fill.
            if !self.celebrities.contains(followee) {
                let recent = self
                    .step(Step::RecentTweets {
                        user: followee,
                        before: u64::MAX,
                        limit: self.config.backfill,
                    })?
                    .ids()?;
                for tweet in recent {
                    batch.put(
                        CF_HOME,
                        keys::pair_key(follower, tweet),
                        keys::id_key(followee),
                    );
                }
            }
            mine.write(batch)?;
        }
        Ok(())
    }

    /// `actor` makes `follower` stop following `followee`. Idempotent. The followee's tweets
    /// leave the follower's feed.
    pub fn unfollow(&self, actor: u64, follower: u64, followee: u64) -> Result<()> {
        self.check_edge(actor, follower, followee)?;
        let _guard = self.lock_user(follower);
        let mine = self.user_shard(follower)?;
        if mine.contains(CF_FOLLOWING, &keys::pair_key(follower, followee))? {
            let mut batch = Batch::new();
            batch.delete(CF_FOLLOWING, keys::pair_key(follower, followee));
            batch.merge(
                CF_COUNTERS,
                keys::counter_key(follower, Counter::Following),
                keys::counter_value(-1),
            );
            let cap = self.config.home_cap * 2;
            for (tweet, author) in mine.scan_pairs_rev(CF_HOME, follower, u64::MAX, cap)? {
                if keys::decode_id(&author) == Some(followee) {
                    batch.delete(CF_HOME, keys::pair_key(follower, tweet));
                }
            }
            mine.write(batch)?;
        }
        self.step(Step::RemoveFollower { followee, follower })?
            .done()
    }

    fn check_edge(&self, actor: u64, follower: u64, followee: u64) -> Result<()> {
        if actor != follower {
            return Err(Error::Forbidden(
                "you can only follow or unfollow as yourself",
            ));
        }
        if follower == followee {
            return Err(Error::invalid("id", "you cannot follow yourself"));
        }
        if !self.user_exists(followee)? {
            return Err(Error::NotFound("user"));
        }
        Ok(())
    }

    /// Whether `follower` follows `followee`.
    pub fn is_following(&self, follower: u64, followee: u64) -> Result<bool> {
        self.user_shard(follower)?
            .contains(CF_FOLLOWING, &keys::pair_key(follower, followee))
    }

    /// Whether `follower` follows `user`, read on `user`'s shard (its `followers` row), so a
    /// request at `user`'s primary needs no other shard.
    pub fn is_followed_by(&self, user: u64, follower: u64) -> Result<bool> {
        self.user_shard(user)?
            .contains(CF_FOLLOWERS, &keys::pair_key(user, follower))
    }

    /// The users following `user`, by ascending user id.
    pub fn followers(&self, user: u64, page: PageRequest) -> Result<Page<Profile>> {
        self.user_list(CF_FOLLOWERS, user, page)
    }

    /// The users `user` follows, by ascending user id.
    pub fn following(&self, user: u64, page: PageRequest) -> Result<Page<Profile>> {
        self.user_list(CF_FOLLOWING, user, page)
    }

    fn user_list(&self, cf: &'static str, user: u64, page: PageRequest) -> Result<Page<Profile>> {
        if !self.user_exists(user)? {
            return Err(Error::NotFound("user"));
        }
        let rows = self
            .step(Step::UserList {
                user,
                followers: cf == CF_FOLLOWERS,
                after: page.after,
                limit: page.limit + 1,
            })?
            .ids()?;
        // The look-ahead row only proves there is a next page; it is not hydrated.
        let next_cursor = (rows.len() > page.limit)
            .then(|| rows.get(page.limit - 1).map(|&id| encode_cursor(id)))
            .flatten();
        let mut items = Vec::with_capacity(page.limit);
        for &id in rows.iter().take(page.limit) {
            if let Some(profile) = self.find_profile(id)? {
                items.push(profile);
            }
        }
        Ok(Page { items, next_cursor })
    }
}
