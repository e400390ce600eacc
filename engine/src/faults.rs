//! Test-only damage, behind the `fault-injection` feature: breaks a stopped store on purpose
//! so the tests of `chirpctl verify` can prove it notices. Never built into the binaries.

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::keys::{self, Counter, CF_COUNTERS, CF_TWEETS};
use crate::node::Inner;

impl Inner {
    /// Deletes a tweet's row and nothing else, leaving its `user_tweets` row dangling.
    pub fn damage_drop_tweet_row(&self, tweet_id: u64) -> Result<()> {
        let shard = self
            .tweet_shard(tweet_id)?
            .ok_or(Error::NotFound("tweet"))?;
        let mut batch = Batch::new();
        batch.delete(CF_TWEETS, keys::id_key(tweet_id));
        shard.write(batch)
    }

    /// Adds `delta` to a user's followers counter without touching the edges it counts.
    pub fn damage_followers_counter(&self, user_id: u64, delta: i64) -> Result<()> {
        let shard = self.user_shard(user_id)?;
        let mut batch = Batch::new();
        batch.merge(
            CF_COUNTERS,
            keys::counter_key(user_id, Counter::Followers),
            keys::counter_value(delta),
        );
        shard.write(batch)
    }
}
