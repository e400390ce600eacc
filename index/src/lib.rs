//! `chirp-index` is the in-process inverted hashtag index for one Chirp
//! storage shard. It owns the mapping from normalized hashtags to tweet ids
//! (roaring bitmaps over dense per-shard doc numbers), tombstoning of removed
//! tweets, newest-first boolean tag queries with exact `before`-cursor
//! pagination, and the versioned, checksummed segment file that persists it.
//! It does not normalize tags, store tweets, or coordinate across shards:
//! callers hand it lowercase tags and time-ordered u64 tweet ids, and after a
//! crash they replay recent tweets from storage (see [`TagIndex::high_water`]).

#![warn(missing_docs)]

mod error;
pub mod fuzz_check;
mod index;
mod order;
mod persist;
mod query;

pub use error::{Error, Result};
pub use index::TagIndex;
pub use persist::FORMAT_VERSION;
pub use query::Query;
