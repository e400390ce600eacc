//! Hashtag search: one in-memory [`TagIndex`] per shard, kept in step with posts and deletes,
//! saved beside the shard and reloaded at start, queried scatter-gather across shards.
//!
//! Crash safety: the index is saved on clean shutdown and every few minutes. At start the saved
//! file is loaded and every tweet newer than its high-water mark (less a margin for concurrent
//! posts) is replayed from the `tweets` column family, so a tweet acknowledged just before a
//! crash is searchable after it; inserts are idempotent. A tweet deleted after the last save
//! may still be in the loaded index: hydration finds its document gone, skips it and drops it
//! from the index, so it never appears in results.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};

use chirp_index::{Query, TagIndex};

use crate::doc::{self, TweetDoc};
use crate::error::{Error, Result};
use crate::ids;
use crate::keys::{self, CF_TWEETS};
use crate::model::{page_of, Page, PageRequest};
use crate::node::Inner;
use crate::placement::ShardId;
use crate::shard::Shard;
use crate::steps::Step;
use crate::text;

/// Most tags in one `all`/`any` query.
pub const MAX_QUERY_TAGS: usize = 10;
/// How far before the saved high-water mark replay starts, for posts that were written
/// before it but indexed after the save.
const REPLAY_MARGIN_MS: u64 = 60_000;

/// A hashtag query as the caller gives it (tags not yet normalized).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "tags", rename_all = "snake_case")]
pub enum TagQuery {
    /// One tag.
    Tag(String),
    /// Tweets carrying every tag.
    All(Vec<String>),
    /// Tweets carrying any of the tags.
    Any(Vec<String>),
}

/// Where a shard's index is saved.
fn index_path(data_dir: &std::path::Path, shard: usize) -> PathBuf {
    data_dir.join("shards").join(format!("{shard:03}.tags"))
}

/// The normalized (matching) form of a tweet's hashtags.
pub(crate) fn normalized_tags(tweet: &TweetDoc) -> Vec<String> {
    let mut tags: Vec<String> = tweet
        .hashtags
        .iter()
        .filter_map(|t| text::normalize_tag(t))
        .collect();
    tags.sort();
    tags.dedup();
    tags
}

/// Loads a shard's saved index and replays what it misses, or rebuilds it from the tweets.
fn open_index(shard: &Shard, path: &std::path::Path) -> Result<TagIndex> {
    let (mut index, from) = match TagIndex::load(path) {
        Ok(index) => {
            let from = index.high_water().map_or(0, |hw| {
                ids::min_id_at(ids::unix_ms_of_id(hw).saturating_sub(REPLAY_MARGIN_MS))
            });
            (index, from)
        }
        Err(chirp_index::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            (TagIndex::new(), 0)
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "hashtag index unreadable; rebuilding it");
            (TagIndex::new(), 0)
        }
    };
    let mut replayed = 0u64;
    shard.for_each_from(CF_TWEETS, &keys::id_key(from), |key, value| {
        if let Some(id) = keys::decode_id(key) {
            let tweet: TweetDoc = doc::decode(value)?;
            index
                .try_insert(id, &normalized_tags(&tweet))
                .map_err(|e| index_error(shard.index(), e))?;
            replayed += 1;
        }
        Ok(())
    })?;
    tracing::info!(
        shard = shard.index(),
        tweets = index.len(),
        replayed,
        "hashtag index ready"
    );
    Ok(index)
}

fn normalize_all(field: &'static str, tags: Vec<String>) -> Result<Vec<String>> {
    if tags.is_empty() || tags.len() > MAX_QUERY_TAGS {
        return Err(Error::invalid(
            field,
            format!("give 1 to {MAX_QUERY_TAGS} hashtags"),
        ));
    }
    tags.iter()
        .map(|t| {
            text::normalize_tag(t.trim())
                .ok_or_else(|| Error::invalid(field, format!("{t:?} is not a hashtag")))
        })
        .collect()
}

/// The search service: one hashtag index per shard held here, kept in step with the
/// shard's tweets, saved beside it, queried across the held shards.
pub struct Search {
    indexes: Vec<OnceLock<RwLock<TagIndex>>>,
    /// Held while index files are written: saves share one temp file per shard, and a
    /// checkpoint install replaces a shard's file.
    saves: Mutex<()>,
    data_dir: PathBuf,
}

impl Search {
    /// The service for a data dir of `count` shards, holding no index yet.
    pub(crate) fn new(data_dir: &Path, count: usize) -> Self {
        Search {
            indexes: (0..count).map(|_| OnceLock::new()).collect(),
            saves: Mutex::new(()),
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// Loads (or rebuilds) the index of a shard this node starts holding.
    pub(crate) fn open(&self, shard: &Shard) -> Result<()> {
        let s = shard.index();
        let index = open_index(shard, &index_path(&self.data_dir, s))?;
        self.slot(s)?
            .set(RwLock::new(index))
            .map_err(|_| Error::invalid("shard", format!("shard {s}'s index is already open")))
    }

    /// Rebuilds a shard's index from its tweets (its files were replaced by a checkpoint).
    pub(crate) fn rebuild(&self, shard: &Shard) -> Result<()> {
        let s = shard.index();
        let _saves = lock(&self.saves);
        let path = index_path(&self.data_dir, s);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let index = open_index(shard, &path)?;
        *self.index(s)?.write().map_err(|_| poisoned())? = index;
        Ok(())
    }

    /// Empties the index of a shard this node no longer holds and removes its file.
    pub(crate) fn forget(&self, s: ShardId) -> Result<()> {
        let _saves = lock(&self.saves);
        if let Ok(index) = self.index(s) {
            *index.write().map_err(|_| poisoned())? = TagIndex::new();
        }
        match std::fs::remove_file(index_path(&self.data_dir, s)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn slot(&self, s: ShardId) -> Result<&OnceLock<RwLock<TagIndex>>> {
        self.indexes
            .get(s)
            .ok_or_else(|| Error::invalid("shard", format!("no shard {s}")))
    }

    /// A held shard's index.
    pub(crate) fn index(&self, s: ShardId) -> Result<&RwLock<TagIndex>> {
        self.slot(s)?.get().ok_or(Error::NotHere(s))
    }

    /// Adds a stored tweet to its shard's index. Never panics: a full index (2^32 documents
    /// in one shard) is an error, and the lock stays usable for every other caller.
    pub(crate) fn insert(&self, tweet: &TweetDoc) -> Result<()> {
        let tags = normalized_tags(tweet);
        let s = ids::shard_of_id(tweet.id);
        let mut index = self.index(s)?.write().map_err(|_| poisoned())?;
        try_insert(&mut index, tweet.id, &tags).map_err(|e| index_error(s, e))?;
        Ok(())
    }

    /// Drops a tweet from its shard's index (nothing when the shard is not held here).
    pub(crate) fn remove(&self, id: u64) -> Result<()> {
        if let Ok(index) = self.index(ids::shard_of_id(id)) {
            index.write().map_err(|_| poisoned())?.remove(id);
        }
        Ok(())
    }

    /// Up to `want` ids matching `query` older than `before`, newest first, from the indexes
    /// of `shards`.
    pub(crate) fn candidates(
        &self,
        shards: &[ShardId],
        query: &Query,
        before: u64,
        want: usize,
    ) -> Result<Vec<u64>> {
        let mut candidates: Vec<u64> = Vec::new();
        for &s in shards {
            let index = self.index(s)?.read().map_err(|_| poisoned())?;
            candidates.extend(index.query(query, Some(before), want));
        }
        candidates.sort_unstable_by(|a, b| b.cmp(a));
        Ok(candidates)
    }

    /// Up to `limit` hashtags starting with `prefix` (normalized) that live tweets of
    /// `shards` carry, in name order.
    pub(crate) fn tag_names(
        &self,
        shards: &[ShardId],
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>> {
        let mut names: Vec<String> = Vec::new();
        for &s in shards {
            let index = self.index(s)?.read().map_err(|_| poisoned())?;
            names.extend(index.tags_with_prefix(prefix, limit));
        }
        names.sort_unstable();
        names.dedup();
        names.truncate(limit);
        Ok(names)
    }

    /// Saves the indexes of `shards` beside them. Each index is copied under its read lock
    /// and written outside it, so posts and searches never wait on the file write and fsync;
    /// saves are serialized (they share one temp file per shard).
    pub(crate) fn save(&self, shards: &[ShardId]) -> Result<()> {
        let _one_at_a_time = lock(&self.saves);
        for &s in shards {
            let snapshot = self.index(s)?.read().map_err(|_| poisoned())?.clone();
            save(&snapshot, &index_path(&self.data_dir, s))
                .map_err(|e| Error::Storage(format!("saving hashtag index {s}: {e}")))?;
        }
        Ok(())
    }
}

impl Inner {
    /// Tweets matching a hashtag query, newest first, from the shards held here.
    pub fn search(&self, query: TagQuery, page: PageRequest) -> Result<Page<Arc<TweetDoc>>> {
        let asked = query.clone();
        let query = parse(query)?;
        let held = self.placement.local_ids();
        // Shards held elsewhere are asked too when this node can reach them.
        let elsewhere: Vec<ShardId> = match self.remote.get() {
            Some(_) => (0..self.placement.count())
                .filter(|&s| !self.placement.holds(s))
                .collect(),
            None => Vec::new(),
        };
        let mut before = page.after.unwrap_or(u64::MAX);
        let mut out: Vec<Arc<TweetDoc>> = Vec::with_capacity(page.limit + 1);
        loop {
            let want = page.limit + 1 - out.len();
            let mut candidates = self.hashtags.candidates(&held, &query, before, want)?;
            for &shard in &elsewhere {
                let step = Step::Search {
                    shard,
                    query: asked.clone(),
                    before,
                    want,
                };
                candidates.extend(self.step(step)?.ids()?);
            }
            candidates.sort_unstable_by(|a, b| b.cmp(a));
            let exhausted = candidates.len() < want;
            candidates.truncate(want);
            for &id in &candidates {
                before = id;
                match self.tweet_doc(id)? {
                    Some(t) => out.push(t),
                    None => self.hashtags.remove(id)?,
                }
            }
            if out.len() > page.limit || exhausted {
                break;
            }
        }
        Ok(page_of(out, page.limit, |t| t.id))
    }

    /// Up to `limit` hashtags in use that start with `prefix` (any case, with or without
    /// its '#'), in name order, from every shard (the hashtag search of the Mastodon client
    /// API). A prefix that cannot start a hashtag has none.
    pub fn hashtags_with_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<String>> {
        let Some(prefix) = text::normalize_tag(prefix.trim()) else {
            return Ok(Vec::new());
        };
        let limit = limit.min(crate::model::MAX_LIMIT);
        let held = self.placement.local_ids();
        let mut names = self.hashtags.tag_names(&held, &prefix, limit)?;
        if self.remote.get().is_some() {
            for shard in (0..self.placement.count()).filter(|&s| !self.placement.holds(s)) {
                let step = Step::TagNames {
                    shard,
                    prefix: prefix.clone(),
                    limit,
                };
                names.extend(self.step(step)?.names()?);
            }
        }
        names.sort_unstable();
        names.dedup();
        names.truncate(limit);
        Ok(names)
    }

    /// Saves the index of every shard held here.
    pub(crate) fn save_indexes(&self) -> Result<()> {
        self.hashtags.save(&self.placement.local_ids())
    }
}

/// A query with its tags in matching form.
pub(crate) fn parse(query: TagQuery) -> Result<Query> {
    Ok(match query {
        TagQuery::Tag(t) => Query::Tag(
            text::normalize_tag(t.trim())
                .ok_or_else(|| Error::invalid("hashtag", format!("{t:?} is not a hashtag")))?,
        ),
        TagQuery::All(tags) => Query::All(normalize_all("all", tags)?),
        TagQuery::Any(tags) => Query::Any(normalize_all("any", tags)?),
    })
}

fn lock(m: &Mutex<()>) -> MutexGuard<'_, ()> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn try_insert(index: &mut TagIndex, id: u64, tags: &[String]) -> chirp_index::Result<u32> {
    fail::fail_point!("search::insert", |_| Err(chirp_index::Error::Full));
    index.try_insert(id, tags)
}

fn save(index: &TagIndex, path: &std::path::Path) -> chirp_index::Result<()> {
    fail::fail_point!("search::save", |_| Err(chirp_index::Error::Io(
        std::io::Error::other("failpoint search::save")
    )));
    index.save(path)
}

fn index_error(shard: usize, e: chirp_index::Error) -> Error {
    Error::Storage(format!("hashtag index of shard {shard}: {e}"))
}

fn poisoned() -> Error {
    Error::Storage("hashtag index lock poisoned".into())
}
