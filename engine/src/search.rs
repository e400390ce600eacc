//! Hashtag search: one in-memory [`TagIndex`] per shard, kept in step with posts and deletes,
//! saved beside the shard and reloaded at start, queried scatter-gather across shards.
//!
//! Crash safety: the index is saved on clean shutdown and every few minutes. At start the saved
//! file is loaded and every tweet newer than its high-water mark (less a margin for concurrent
//! posts) is replayed from the `tweets` column family, so a tweet acknowledged just before a
//! crash is searchable after it; inserts are idempotent. A tweet deleted after the last save
//! may still be in the loaded index: hydration finds its document gone, skips it and drops it
//! from the index, so it never appears in results.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::{OnceLock, RwLock};

use chirp_index::{Query, TagIndex};

use crate::doc::{self, TweetDoc};
use crate::error::{Error, Result};
use crate::ids;
use crate::keys::{self, CF_TWEETS};
use crate::model::{page_of, Page, PageRequest};
use crate::node::Inner;
use crate::shard::Shard;
use crate::text;

/// Most tags in one `all`/`any` query.
pub const MAX_QUERY_TAGS: usize = 10;
/// How far before the saved high-water mark replay starts, for posts that were written
/// before it but indexed after the save.
const REPLAY_MARGIN_MS: u64 = 60_000;

/// A hashtag query as the caller gives it (tags not yet normalized).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagQuery {
    /// One tag.
    Tag(String),
    /// Tweets carrying every tag.
    All(Vec<String>),
    /// Tweets carrying any of the tags.
    Any(Vec<String>),
}

/// Where a shard's index is saved.
pub(crate) fn index_path(data_dir: &std::path::Path, shard: usize) -> PathBuf {
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
pub(crate) fn open_index(shard: &Shard, path: &std::path::Path) -> Result<TagIndex> {
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

impl Inner {
    /// A held shard's hashtag index.
    pub(crate) fn index_of(&self, shard: usize) -> Result<&RwLock<TagIndex>> {
        self.tags
            .get(shard)
            .and_then(OnceLock::get)
            .ok_or(Error::NotHere(shard))
    }

    /// Tweets matching a hashtag query, newest first.
    pub fn search(&self, query: TagQuery, page: PageRequest) -> Result<Page<Arc<TweetDoc>>> {
        let query = match query {
            TagQuery::Tag(t) => Query::Tag(
                text::normalize_tag(t.trim())
                    .ok_or_else(|| Error::invalid("hashtag", format!("{t:?} is not a hashtag")))?,
            ),
            TagQuery::All(tags) => Query::All(normalize_all("all", tags)?),
            TagQuery::Any(tags) => Query::Any(normalize_all("any", tags)?),
        };
        let mut before = page.after.unwrap_or(u64::MAX);
        let mut out: Vec<Arc<TweetDoc>> = Vec::with_capacity(page.limit + 1);
        loop {
            let want = page.limit + 1 - out.len();
            let mut candidates: Vec<u64> = Vec::new();
            for shard in self.placement.local_ids() {
                let index = self.index_of(shard)?.read().map_err(|_| poisoned())?;
                candidates.extend(index.query(&query, Some(before), want));
            }
            candidates.sort_unstable_by(|a, b| b.cmp(a));
            let exhausted = candidates.len() < want;
            candidates.truncate(want);
            for &id in &candidates {
                before = id;
                match self.tweet_doc(id)? {
                    Some(t) => out.push(t),
                    None => self.forget_in_index(id)?,
                }
            }
            if out.len() > page.limit || exhausted {
                break;
            }
        }
        Ok(page_of(out, page.limit, |t| t.id))
    }

    /// Adds a stored tweet to its shard's index. Never panics: a full index (2^32 documents
    /// in one shard) is an error, and the lock stays usable for every other caller.
    pub(crate) fn index_tweet(&self, tweet: &TweetDoc) -> Result<()> {
        let tags = normalized_tags(tweet);
        if let Some(shard) = self.tweet_shard(tweet.id)? {
            let mut index = self
                .index_of(shard.index())?
                .write()
                .map_err(|_| poisoned())?;
            try_insert(&mut index, tweet.id, &tags).map_err(|e| index_error(shard.index(), e))?;
        }
        Ok(())
    }

    /// Drops a tweet from its shard's index.
    pub(crate) fn forget_in_index(&self, id: u64) -> Result<()> {
        if let Some(shard) = self.tweet_shard(id)? {
            self.index_of(shard.index())?
                .write()
                .map_err(|_| poisoned())?
                .remove(id);
        }
        Ok(())
    }

    /// Saves every shard's index beside the shard. Each index is copied under its read lock
    /// and written outside it, so posts and searches never wait on the file write and fsync;
    /// saves are serialized (they share one temp file per shard).
    pub(crate) fn save_indexes(&self) -> Result<()> {
        let _one_at_a_time = self.lock_index_saves();
        for shard in self.placement.local_ids() {
            let snapshot = self
                .index_of(shard)?
                .read()
                .map_err(|_| poisoned())?
                .clone();
            save(&snapshot, &index_path(&self.config.data_dir, shard))
                .map_err(|e| Error::Storage(format!("saving hashtag index {shard}: {e}")))?;
        }
        Ok(())
    }

    /// Serializes writers of the index files (saves, and a checkpoint install replacing one).
    pub(crate) fn lock_index_saves(&self) -> std::sync::MutexGuard<'_, ()> {
        self.index_saves.lock().unwrap_or_else(|p| p.into_inner())
    }
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
