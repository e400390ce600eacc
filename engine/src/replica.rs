//! The engine side of replication: reading a shard's oplog on a primary and applying shipped
//! entries on a replica, keeping the replica's in-memory state (hashtag index, tweet cache,
//! celebrity set) in step with what it applies.

use crate::batch::{Entry, OpKind};
use crate::doc::{self, TweetDoc};
use crate::error::{Error, Result};
use crate::keys::{self, Counter, CF_COUNTERS, CF_TWEETS};
use crate::node::{Inner, NodeRole, OpenMode};
use crate::shard::ShardShared;

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
        self.placement.shard(shard)
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

    /// Applies shipped entries in one synced write (they must continue the log) and updates
    /// the in-memory state; returns the shard's new last LSN.
    pub fn apply_replicated_batch(&self, shard: usize, raws: &[Vec<u8>]) -> Result<u64> {
        let s = self.shard_checked(shard)?;
        for entry in s.apply_entries(raws)? {
            self.follow_entry(&entry)?;
        }
        Ok(s.last_lsn())
    }

    /// The epochs a shard's copy has seen: (epoch, first LSN written in it), oldest first.
    pub fn epoch_history(&self, shard: usize) -> Result<Vec<(u64, u64)>> {
        self.shard_checked(shard)?.epoch_history()
    }

    /// The epoch of a shard's oplog entry at `lsn`, if held.
    pub fn entry_epoch(&self, shard: usize, lsn: u64) -> Result<Option<u64>> {
        self.shard_checked(shard)?.entry_epoch(lsn)
    }

    /// The oldest LSN a shard's oplog holds (0 if empty).
    pub fn oldest_lsn(&self, shard: usize) -> Result<u64> {
        self.shard_checked(shard)?.oldest_lsn()
    }

    /// Bytes of a shard's SST files (what a checkpoint of it copies, give or take the
    /// memtables).
    pub fn shard_bytes(&self, shard: usize) -> Result<u64> {
        let s = self.shard_checked(shard)?;
        let mut total = 0;
        for cf in crate::keys::ALL_CFS {
            total += s.live_sst_bytes(cf)?;
        }
        Ok(total)
    }

    /// Drops a shard's oplog entries below `below` (keeping the last one); local, not logged.
    pub fn trim_oplog(&self, shard: usize, below: u64) -> Result<()> {
        self.shard_checked(shard)?.trim_oplog(below)
    }

    /// Writes a checkpoint of a shard to `dir` (which must not exist).
    pub fn checkpoint_shard(&self, shard: usize, dir: &std::path::Path) -> Result<()> {
        self.shard_checked(shard)?.checkpoint(dir)
    }

    /// Replaces a shard with the checkpoint files in `staged` (moved, not copied) and rebuilds
    /// what follows the data: the shard's hashtag index, the tweet cache, the celebrity set.
    pub fn install_checkpoint(&self, shard: usize, staged: &std::path::Path) -> Result<()> {
        let s = self.shard_checked(shard)?;
        s.replace_with(staged)?;
        self.hashtags.rebuild(s)?;
        self.cache.clear();
        self.celebrities.load(&self.placement, s)
    }

    /// SHA-256 of each column family of a shard except `meta`, the oplog from `oplog_from`.
    pub fn digest(&self, shard: usize, oplog_from: u64) -> Result<Vec<(&'static str, String)>> {
        self.shard_checked(shard)?.digest(oplog_from)
    }

    /// The write gate, primary hint and commit hook shared by the node's shards.
    pub fn shared(&self) -> &ShardShared {
        &self.shard_opts.shared
    }

    /// "primary" or "replica": the role the node is in now; for a data dir opened by a tool,
    /// the role recorded in it.
    pub fn role_name(&self) -> &'static str {
        let primary = match self.config.mode {
            OpenMode::Serve => self.is_writable(),
            OpenMode::Inspect | OpenMode::Maintain => self.config.role == NodeRole::Primary,
        };
        if primary {
            "primary"
        } else {
            "replica"
        }
    }

    /// Whether the node takes writes: it holds shards and is the primary of every one.
    pub fn is_writable(&self) -> bool {
        let mut held = self.placement.local().peekable();
        held.peek().is_some() && held.all(|s| s.is_writable())
    }

    /// Whether this node is the primary of a shard (holds it, gate open).
    pub fn is_primary_of(&self, shard: usize) -> bool {
        self.placement.shard(shard).is_ok_and(|s| s.is_writable())
    }

    /// Whether this node serves a shard's oplog to replicas: it is the primary, or was and
    /// is fenced for a handover (its log is final; the new primary catches up from it).
    pub fn serves_oplog(&self, shard: usize) -> bool {
        self.placement
            .shard(shard)
            .is_ok_and(|s| s.is_writable() || s.is_fenced())
    }

    /// Whether this node's copy of a shard is fenced for a handover (see
    /// [`Node::fence_shard`]).
    pub fn is_fenced(&self, shard: usize) -> bool {
        self.placement.shard(shard).is_ok_and(|s| s.is_fenced())
    }

    /// Makes this node the primary: every shard starts a new epoch, the role is recorded,
    /// writes are taken and the fan-out jobs in the outbox (the old primary's unfinished
    /// ones) are run. Returns the new epochs.
    pub fn promote(&self) -> Result<Vec<u64>> {
        if self.config.cluster.is_some() {
            return Err(Error::invalid(
                "role",
                "a cluster node's shards take their roles from the cluster map, shard by shard",
            ));
        }
        if self.config.mode != OpenMode::Serve {
            return Err(Error::invalid(
                "role",
                "a data dir opened by a tool is not promoted; promote a running node",
            ));
        }
        let epochs = self
            .placement
            .local()
            .map(|s| s.raise_epoch())
            .collect::<Result<Vec<_>>>()?;
        // After the epochs: a crash in between leaves a replica with a raised epoch, which
        // is promoted again; the other order could restart a primary in the old epoch.
        crate::role::write_role(&self.config.data_dir, NodeRole::Primary)?;
        self.shard_opts.shared.set_primary_hint("");
        for s in self.placement.local_ids() {
            self.placement.held(s)?.raise_floors()?;
        }
        self.placement.local().for_each(|s| s.set_writable(true));
        self.resume_fanout()?;
        tracing::info!(?epochs, "promoted to primary");
        Ok(epochs)
    }

    /// Stops taking writes (a replica, or a primary that saw a higher epoch) and records
    /// the data dir as a replica's, so a restart without `--replica-of` does not take writes
    /// either. Writes stop even if recording fails (the error says so).
    pub fn demote(&self, primary_hint: &str) -> Result<()> {
        self.shard_opts.shared.set_primary_hint(primary_hint);
        self.placement.local().for_each(|s| s.set_writable(false));
        if self.config.mode != OpenMode::Serve {
            return Ok(());
        }
        crate::role::write_role(&self.config.data_dir, NodeRole::Replica)
    }

    /// Makes this copy of one shard its primary: a new epoch, then the gate opens. On a
    /// standalone node the role is the node's, so this promotes the node (every shard).
    /// Returns the shard's new epoch.
    pub fn promote_shard(&self, shard: usize) -> Result<u64> {
        if self.config.cluster.is_none() {
            self.promote()?;
            return self.log_position(shard).map(|p| p.epoch);
        }
        if self.config.mode != OpenMode::Serve {
            return Err(Error::invalid(
                "role",
                "a data dir opened by a tool is not promoted; promote a running node",
            ));
        }
        let epoch = self.shard_checked(shard)?.raise_epoch()?;
        self.set_shard_primary(shard, true)?;
        tracing::info!(shard, epoch, "shard promoted");
        Ok(epoch)
    }

    /// Makes this copy of a cluster shard its primary at the map's `epoch`: the copy's epoch
    /// is raised to it if it is below (a promotion), kept if it is there already (the same
    /// primary, restarted), then the gate opens. Returns the copy's epoch.
    pub fn promote_shard_to(&self, shard: usize, epoch: u64) -> Result<u64> {
        if self.config.cluster.is_none() || self.config.mode != OpenMode::Serve {
            return Err(Error::invalid(
                "role",
                "only a serving cluster node takes a shard's epoch from the map",
            ));
        }
        let s = self.shard_checked(shard)?;
        let now = if s.epoch() < epoch {
            s.raise_epoch_to(epoch)?
        } else {
            s.epoch()
        };
        self.set_shard_primary(shard, true)?;
        tracing::info!(shard, epoch = now, "shard takes writes");
        Ok(now)
    }

    /// Closes one shard's gate (a replica of it, or a deposed primary). On a standalone node
    /// the role is the node's, so this demotes the node.
    pub fn demote_shard(&self, shard: usize, primary_hint: &str) -> Result<()> {
        if self.config.cluster.is_none() {
            return self.demote(primary_hint);
        }
        self.set_shard_primary(shard, false)
    }

    /// Closes one shard's gate for a planned handover and returns its last LSN once every
    /// write that got past the gate is settled: the new primary must hold that LSN before
    /// it takes over. Reopened with [`Node::set_shard_primary`] if the handover is called
    /// off.
    pub fn fence_shard(&self, shard: usize) -> Result<u64> {
        let last = self.shard_checked(shard)?.close_gate();
        tracing::info!(shard, last_lsn = last, "shard gate closed for a handover");
        Ok(last)
    }

    fn follow_entry(&self, entry: &Entry) -> Result<()> {
        for op in &entry.ops {
            match (op.cf_name(), op.kind) {
                (CF_TWEETS, OpKind::Put) => {
                    let tweet: TweetDoc = doc::decode(&op.value)?;
                    self.cache.invalidate(tweet.id);
                    self.hashtags.insert(&tweet)?;
                }
                (CF_TWEETS, OpKind::Delete) => {
                    if let Some(id) = keys::decode_id(&op.key) {
                        self.cache.invalidate(id);
                        self.hashtags.remove(id)?;
                    }
                }
                (CF_COUNTERS, OpKind::Merge) => {
                    if let Some((user, kind)) = keys::decode_counter(&op.key) {
                        if kind == Counter::Followers as u8 {
                            self.celebrities
                                .note(user, self.counter(user, Counter::Followers)?);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}
