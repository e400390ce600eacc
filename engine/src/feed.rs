//! Reading timelines: the home feed (materialized rows merged with celebrities' tweets at
//! read time) and a user's own tweets, newest first, with cursors.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use crate::doc::TweetDoc;
use crate::error::{Error, Result};
use crate::homecache::Basis;
use crate::keys::{self, CF_FOLLOWING, CF_HOME, CF_USER_TWEETS};
use crate::model::{page_of, Page, PageRequest};
use crate::node::Inner;
use crate::placement::ShardId;
use crate::shard::Shard;
use crate::steps::Step;

/// Rows read from a source per refill.
const CHUNK: usize = 64;
/// Followees read per feed request to find celebrities (far above the mean of ~100).
const MAX_FOLLOWING_SCAN: usize = 20_000;

/// Where a source reads its rows.
enum Origin<'a> {
    /// A pair column family of a shard held here.
    Local(&'a Shard, &'static str),
    /// A user's timeline on a shard held elsewhere (the `RecentTweets` step).
    Remote,
    /// Every tweet of a shard, wherever it is held (the `ShardTweets` step).
    Shard(ShardId),
}

/// One newest-first stream of (tweet id, author id) rows: a pair column family of a shard
/// held here, or a timeline held elsewhere.
struct Source<'a> {
    origin: Origin<'a>,
    owner: u64,
    /// Every row still to read has a tweet id below this.
    before: u64,
    buf: VecDeque<(u64, u64)>,
    done: bool,
}

impl<'a> Source<'a> {
    fn new(shard: &'a Shard, cf: &'static str, owner: u64, before: u64) -> Self {
        Self::from(Origin::Local(shard, cf), owner, before)
    }

    fn from(origin: Origin<'a>, owner: u64, before: u64) -> Self {
        Source {
            origin,
            owner,
            before,
            buf: VecDeque::new(),
            done: false,
        }
    }

    fn peek(&mut self, inner: &Inner) -> Result<Option<u64>> {
        if self.buf.is_empty() && !self.done {
            let rows: Vec<(u64, u64)> = match self.origin {
                Origin::Local(shard, cf) => shard
                    .scan_pairs_rev(cf, self.owner, self.before, CHUNK)?
                    .into_iter()
                    // `home` rows carry the author; `user_tweets` rows belong to the owner.
                    .map(|(tweet, value)| (tweet, keys::decode_id(&value).unwrap_or(self.owner)))
                    .collect(),
                Origin::Remote => inner
                    .step(Step::RecentTweets {
                        user: self.owner,
                        before: self.before,
                        limit: CHUNK,
                    })?
                    .ids()?
                    .into_iter()
                    .map(|tweet| (tweet, self.owner))
                    .collect(),
                Origin::Shard(shard) => inner
                    .step(Step::ShardTweets {
                        shard,
                        before: self.before,
                        want: CHUNK,
                    })?
                    .ids()?
                    .into_iter()
                    .map(|tweet| (tweet, self.owner))
                    .collect(),
            };
            self.done = rows.len() < CHUNK;
            for (tweet, author) in rows {
                self.before = tweet;
                self.buf.push_back((tweet, author));
            }
        }
        Ok(self.buf.front().map(|&(tweet, _)| tweet))
    }
}

impl Inner {
    /// Merges sources newest first and hydrates up to `limit + 1` tweets that pass `keep`.
    fn merge_sources(
        &self,
        mut sources: Vec<Source<'_>>,
        limit: usize,
        keep: impl Fn(u64) -> bool,
    ) -> Result<Vec<Arc<TweetDoc>>> {
        let mut out = Vec::with_capacity(limit + 1);
        let mut last = u64::MAX;
        while out.len() <= limit {
            let mut best: Option<(usize, u64)> = None;
            for (i, source) in sources.iter_mut().enumerate() {
                if let Some(id) = source.peek(self)? {
                    if best.is_none_or(|(_, b)| id > b) {
                        best = Some((i, id));
                    }
                }
            }
            let Some((i, _)) = best else { break };
            let Some((tweet, author)) = sources[i].buf.pop_front() else {
                break;
            };
            // The same tweet can come from `home` and a celebrity's timeline.
            if tweet == last || !keep(author) {
                continue;
            }
            last = tweet;
            // A deleted tweet's rows may linger until its delete fan-out runs; skip them.
            if let Some(doc) = self.tweet_doc(tweet)? {
                out.push(doc);
            }
        }
        Ok(out)
    }

    /// A user's tweets older than `before`, newest first, wherever the user's shard is.
    fn timeline_source(&self, user: u64, before: u64) -> Source<'_> {
        match self.user_shard(user) {
            Ok(shard) => Source::new(shard, CF_USER_TWEETS, user, before),
            Err(_) => Source::from(Origin::Remote, user, before),
        }
    }

    /// The home feed of `user`: their tweets and those of everyone they follow. A first page
    /// merged here is kept in the home-page cache and served from it while nothing it was
    /// merged from has changed (see `homecache.rs`).
    pub fn home_feed(&self, user: u64, page: PageRequest) -> Result<Page<Arc<TweetDoc>>> {
        if self.profile_doc(user)?.is_none() {
            return Err(Error::NotFound("user"));
        }
        let first = page.after.is_none();
        // Every version is read before storage is: a write landing after these reads makes
        // the page merged below stale, never a stale page current.
        let versions = &self.shard_opts.shared.versions;
        let (global, celebrities) = (versions.global(), self.celebrities.generation());
        if first {
            let cached = self
                .home_cache
                .get(user, page.limit, global, celebrities, versions);
            if let Some(items) = cached
                .map(|ids| self.hydrate_all(&ids))
                .transpose()?
                .flatten()
            {
                return Ok(page_of(items, page.limit, |t| t.id));
            }
        }
        let reader = versions.of(user);
        let before = page.after.unwrap_or(u64::MAX);
        let shard = self.user_shard(user)?;
        let following: HashSet<u64> = shard
            .scan_pairs(CF_FOLLOWING, user, None, MAX_FOLLOWING_SCAN)?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let mut sources = vec![Source::new(shard, CF_HOME, user, before)];
        let mut merged = Vec::new();
        // Writes to timelines held elsewhere move no version here: such pages are not kept.
        let mut keep_page = first;
        for &followee in &following {
            if self.celebrities.contains(followee) {
                merged.push((followee, versions.of(followee)));
                let source = self.timeline_source(followee, before);
                keep_page &= matches!(source.origin, Origin::Local(..));
                sources.push(source);
            }
        }
        // Rows of someone unfollowed moments ago (or fanned out while unfollowing) are
        // filtered here, so unfollowing takes effect at once.
        let items = self.merge_sources(sources, page.limit, |author| {
            author == user || following.contains(&author)
        })?;
        if keep_page {
            let basis = Basis {
                global,
                celebrities,
                reader,
                merged,
            };
            let ids = items.iter().map(|t| t.id).collect();
            self.home_cache.put(user, page.limit, basis, ids);
        }
        Ok(page_of(items, page.limit, |t| t.id))
    }

    /// Every tweet of `ids`, or None if one is gone (deleted since the page was merged).
    fn hydrate_all(&self, ids: &[u64]) -> Result<Option<Vec<Arc<TweetDoc>>>> {
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            match self.tweet_doc(id)? {
                Some(doc) => out.push(doc),
                None => return Ok(None),
            }
        }
        Ok(Some(out))
    }

    /// The tweets `user` posted, newest first.
    pub fn user_timeline(&self, user: u64, page: PageRequest) -> Result<Page<Arc<TweetDoc>>> {
        if !self.user_exists(user)? {
            return Err(Error::NotFound("user"));
        }
        let before = page.after.unwrap_or(u64::MAX);
        let source = self.timeline_source(user, before);
        let items = self.merge_sources(vec![source], page.limit, |_| true)?;
        Ok(page_of(items, page.limit, |t| t.id))
    }

    /// Every user's tweets, newest first: each shard's newest tweets, merged (the public
    /// timeline of the Mastodon client API).
    pub fn public_timeline(&self, page: PageRequest) -> Result<Page<Arc<TweetDoc>>> {
        let before = page.after.unwrap_or(u64::MAX);
        let sources = (0..self.placement.count())
            .map(|s| Source::from(Origin::Shard(s), 0, before))
            .collect();
        let items = self.merge_sources(sources, page.limit, |_| true)?;
        Ok(page_of(items, page.limit, |t| t.id))
    }
}
