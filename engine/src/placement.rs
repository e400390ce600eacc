//! Placement: which shard holds a user, a handle or a tweet, and which of those shards this
//! node holds. It is the only way the rest of the engine reaches a shard.
//!
//! The shard count is logical and fixed when a data dir (later: a cluster) is made; user →
//! shard is a pure function of the user id and that count ([`ids::shard_of_user`]), a tweet or
//! media id names its shard in its shard bits. A node may hold any subset of the shards: a
//! shard held elsewhere answers [`Error::NotHere`], never a panic, so a caller can route the
//! request to the shard's owner. Slots are filled once (a shard opened at start or when the
//! map assigns it) and never emptied while the node runs, so a lookup hands out a plain
//! `&Shard` without locking. A copy the map takes away is *dropped*: its slot stays, marked,
//! with its files closed and moved aside, and every lookup answers [`Error::NotHere`] as for
//! a shard never held; holding the shard again reopens it in the same slot.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::ids::{self, IdGen};
use crate::keys::{self, CF_MEDIA, CF_PROFILES, CF_TWEETS};
use crate::shard::Shard;

/// A logical shard's number, `0..count`.
pub type ShardId = usize;

/// A shard this node holds, with the id generators that mint on it.
pub(crate) struct Held {
    pub(crate) shard: Shard,
    /// Tweet ids: shard bits = this shard, above the newest stored tweet.
    pub(crate) tweet_ids: IdGen,
    /// Media ids, likewise.
    pub(crate) media_ids: IdGen,
    /// User ids placed on this shard (see [`Placement::mint_user`]).
    pub(crate) user_ids: IdGen,
    /// Set while the copy is dropped (closed, its files moved aside): held no longer.
    dropped: AtomicBool,
}

impl Held {
    /// A shard opened here, its generators set above the newest ids it stores (so a clock
    /// stepped back across a restart cannot repeat one).
    pub(crate) fn open(shard: Shard) -> Result<Held> {
        let s = shard.index();
        Ok(Held {
            tweet_ids: IdGen::new(s, newest(&shard, CF_TWEETS)?),
            media_ids: IdGen::new(s, newest(&shard, CF_MEDIA)?),
            user_ids: IdGen::new(s, newest(&shard, CF_PROFILES)?),
            shard,
            dropped: AtomicBool::new(false),
        })
    }

    /// Raises the generators above the newest ids stored now: done before the copy starts
    /// minting as a primary, since as a replica it stored ids another primary minted.
    pub(crate) fn raise_floors(&self) -> Result<()> {
        self.tweet_ids.raise_floor(newest(&self.shard, CF_TWEETS)?);
        self.media_ids.raise_floor(newest(&self.shard, CF_MEDIA)?);
        self.user_ids.raise_floor(newest(&self.shard, CF_PROFILES)?);
        Ok(())
    }
}

/// The largest id keyed in a column family of a shard (0 if none).
fn newest(shard: &Shard, cf: &str) -> Result<u64> {
    Ok(shard
        .last_key(cf)?
        .and_then(|k| keys::decode_id(&k))
        .unwrap_or(0))
}

/// The shards of the service and the ones this node holds.
pub struct Placement {
    slots: Vec<OnceLock<Held>>,
    /// Turns through the held shards for new users' homes.
    next_home: AtomicUsize,
}

impl Placement {
    /// A placement of `count` logical shards, none held yet.
    pub(crate) fn new(count: usize) -> Result<Self> {
        if count == 0 || count > ids::MAX_SHARDS {
            return Err(Error::invalid(
                "shards",
                format!("must be 1..={}", ids::MAX_SHARDS),
            ));
        }
        Ok(Placement {
            slots: (0..count).map(|_| OnceLock::new()).collect(),
            next_home: AtomicUsize::new(0),
        })
    }

    /// Starts holding an opened shard; its id generators start above what it stores.
    pub(crate) fn hold(&self, held: Held) -> Result<()> {
        let s = held.shard.index();
        let slot = self
            .slots
            .get(s)
            .ok_or_else(|| Error::invalid("shard", format!("no shard {s}")))?;
        slot.set(held)
            .map_err(|_| Error::invalid("shard", format!("shard {s} is already open")))
    }

    /// The logical shard count.
    pub fn count(&self) -> usize {
        self.slots.len()
    }

    /// The shard a user's rows live on.
    pub fn of_user(&self, user_id: u64) -> ShardId {
        ids::shard_of_user(user_id, self.count())
    }

    /// The shard a lowercase handle's claim lives on.
    pub fn of_handle(&self, lower_handle: &str) -> ShardId {
        ids::shard_of_handle(lower_handle, self.count())
    }

    /// The shard a lowercase e-mail address's claim lives on (hashed like a handle, with the
    /// key's prefix, so an address and a handle never share a hash by construction).
    pub fn of_email(&self, lower_email: &str) -> ShardId {
        ids::shard_of_handle(&format!("email:{lower_email}"), self.count())
    }

    /// The shard a registered client application lives on.
    pub fn of_app(&self, client_id: &str) -> ShardId {
        ids::shard_of_handle(client_id, self.count())
    }

    /// The shard a tweet or media id names, or None when it names no shard of the service
    /// (so no such thing exists).
    pub fn of_id(&self, id: u64) -> Option<ShardId> {
        Some(ids::shard_of_id(id)).filter(|&s| s < self.count())
    }

    /// Whether this node holds a shard.
    pub fn holds(&self, shard: ShardId) -> bool {
        self.held(shard).is_ok()
    }

    pub(crate) fn held(&self, shard: ShardId) -> Result<&Held> {
        match self.slots.get(shard) {
            Some(slot) => slot
                .get()
                .filter(|h| !h.dropped.load(Ordering::SeqCst))
                .ok_or(Error::NotHere(shard)),
            None => Err(Error::invalid("shard", format!("no shard {shard}"))),
        }
    }

    /// Stops holding a shard: from now on every lookup answers [`Error::NotHere`]. Returns
    /// its slot, for the caller to close the files (callers that looked it up before may
    /// still be using it); None if the shard was not held.
    pub(crate) fn drop_held(&self, shard: ShardId) -> Option<&Held> {
        let held = self.held(shard).ok()?;
        held.dropped.store(true, Ordering::SeqCst);
        Some(held)
    }

    /// A dropped shard's slot, to reopen the shard in it ([`Placement::rehold`]).
    pub(crate) fn dropped(&self, shard: ShardId) -> Option<&Held> {
        self.slots
            .get(shard)?
            .get()
            .filter(|h| h.dropped.load(Ordering::SeqCst))
    }

    /// Holds a dropped shard again once its files are reopened in its slot: its generators
    /// are raised above what it stores now.
    pub(crate) fn rehold(&self, shard: ShardId) -> Result<()> {
        let held = self.dropped(shard).ok_or(Error::NotHere(shard))?;
        held.raise_floors()?;
        held.dropped.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// A shard held here; [`Error::NotHere`] when it is held elsewhere.
    pub(crate) fn shard(&self, shard: ShardId) -> Result<&Shard> {
        self.held(shard).map(|h| &h.shard)
    }

    /// The shard holding a user's rows.
    pub(crate) fn user(&self, user_id: u64) -> Result<&Shard> {
        self.shard(self.of_user(user_id))
    }

    /// The shard holding a handle's claim.
    pub(crate) fn handle(&self, lower_handle: &str) -> Result<&Shard> {
        self.shard(self.of_handle(lower_handle))
    }

    /// The shard holding an e-mail address's claim.
    pub(crate) fn email(&self, lower_email: &str) -> Result<&Shard> {
        self.shard(self.of_email(lower_email))
    }

    /// The shard holding a client application.
    pub(crate) fn app(&self, client_id: &str) -> Result<&Shard> {
        self.shard(self.of_app(client_id))
    }

    /// The shard a tweet or media id names: None when the id names no shard (nothing with
    /// that id exists), [`Error::NotHere`] when the shard is held elsewhere.
    pub(crate) fn by_id(&self, id: u64) -> Result<Option<&Shard>> {
        self.of_id(id).map(|s| self.shard(s)).transpose()
    }

    /// The shards held here, in shard order.
    pub(crate) fn local(&self) -> impl Iterator<Item = &Shard> + '_ {
        self.slots
            .iter()
            .filter_map(|s| s.get())
            .filter(|h| !h.dropped.load(Ordering::SeqCst))
            .map(|h| &h.shard)
    }

    /// The numbers of the shards held here, in order.
    pub fn local_ids(&self) -> Vec<ShardId> {
        (0..self.count()).filter(|&s| self.holds(s)).collect()
    }

    /// A new user id whose rows belong on `shard`, minted by that shard alone: the id carries
    /// the shard in its shard bits and is drawn until [`ids::shard_of_user`] places it on
    /// `shard`. Two shards never mint the same id (their shard bits differ), and every id a
    /// shard minted lives on that shard, so its generator's floor (the newest profile it
    /// stores, replicated with it) keeps ids unique across restarts and failovers. About
    /// `count` draws per id; the generator's sequence absorbs them.
    pub(crate) fn mint_user(&self, shard: ShardId) -> Result<u64> {
        let gen = &self.held(shard)?.user_ids;
        loop {
            let id = gen.next_id();
            if self.of_user(id) == shard {
                return Ok(id);
            }
        }
    }

    /// The shard a new user's rows go to: the shards this node is the primary of, in turn,
    /// so sign-ups spread evenly over them and never need another node's generator.
    /// None when it is the primary of none.
    pub(crate) fn shard_for_new_user(&self) -> Option<ShardId> {
        let primaries: Vec<ShardId> = (0..self.count())
            .filter(|&s| self.shard(s).is_ok_and(Shard::is_writable))
            .collect();
        let turn = self.next_home.fetch_add(1, Ordering::Relaxed);
        primaries.get(turn % primaries.len().max(1)).copied()
    }

    /// A new tweet id on `shard`.
    pub(crate) fn mint_tweet(&self, shard: ShardId) -> Result<u64> {
        Ok(self.held(shard)?.tweet_ids.next_id())
    }

    /// A new media id on `shard`.
    pub(crate) fn mint_media(&self, shard: ShardId) -> Result<u64> {
        Ok(self.held(shard)?.media_ids.next_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_only_shards_of_the_service() {
        let p = Placement::new(4).unwrap();
        let gen = IdGen::new(3, 0);
        assert_eq!(p.of_id(gen.next_id()), Some(3));
        let beyond = IdGen::new(9, 0);
        assert_eq!(p.of_id(beyond.next_id()), None);
        assert!(!p.holds(3));
        assert!(matches!(p.shard(3), Err(Error::NotHere(3))));
        assert!(matches!(p.shard(4), Err(Error::Invalid { .. })));
        assert!(Placement::new(0).is_err());
        assert!(Placement::new(ids::MAX_SHARDS + 1).is_err());
    }
}
