//! The engine side of replication: reading a shard's oplog on a primary and applying shipped
//! entries on a replica, keeping the replica's in-memory state (hashtag index, tweet cache,
//! celebrity set) in step with what it applies.

use crate::batch::{Entry, OpKind};
use crate::doc::{self, TweetDoc};
use crate::error::{Error, Result};
use crate::keys::{self, Counter, CF_COUNTERS, CF_TWEETS};
use crate::node::Inner;

/// Where a shard's log stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogPosition {
    /// The epoch the shard writes with.
    pub epoch: u64,
    /// The last committed LSN.
    pub last_lsn: u64,
}

impl Inner {
    fn shard_checked(&self, shard: usize) -> Result<&crate::shard::Shard> {
        self.shards
            .get(shard)
            .ok_or_else(|| Error::invalid("shard", format!("no shard {shard}")))
    }

    /// A shard's log position.
    pub fn log_position(&self, shard: usize) -> Result<LogPosition> {
        let s = self.shard_checked(shard)?;
        Ok(LogPosition {
            epoch: s.epoch(),
            last_lsn: s.last_lsn(),
        })
    }

    /// Raw oplog entries of a shard after `after_lsn`, up to about `max_bytes`.
    pub fn read_oplog(
        &self,
        shard: usize,
        after_lsn: u64,
        max_bytes: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        self.shard_checked(shard)?.read_oplog(after_lsn, max_bytes)
    }

    /// Applies one shipped entry to a shard (it must be the next LSN) and updates the
    /// in-memory state that follows the data.
    pub fn apply_replicated(&self, shard: usize, raw: &[u8]) -> Result<u64> {
        let entry = self.shard_checked(shard)?.apply_entry(raw)?;
        self.follow_entry(&entry)?;
        Ok(entry.lsn)
    }

    fn follow_entry(&self, entry: &Entry) -> Result<()> {
        for op in &entry.ops {
            match (op.cf_name(), op.kind) {
                (CF_TWEETS, OpKind::Put) => {
                    let tweet: TweetDoc = doc::decode(&op.value)?;
                    self.cache.invalidate(tweet.id);
                    self.index_tweet(&tweet)?;
                }
                (CF_TWEETS, OpKind::Delete) => {
                    if let Some(id) = keys::decode_id(&op.key) {
                        self.cache.invalidate(id);
                        self.forget_in_index(id)?;
                    }
                }
                (CF_COUNTERS, OpKind::Merge) => {
                    if let Some((user, kind)) = keys::decode_counter(&op.key) {
                        if kind == Counter::Followers as u8 {
                            self.note_followers(user, self.counter(user, Counter::Followers)?);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}
