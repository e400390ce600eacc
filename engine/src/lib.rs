//! Chirp's storage engine and domain layer.
//!
//! A node holds N shards, each a RocksDB instance with the column families of [`keys`]; a
//! user's rows live on the shard their id hashes to, a tweet on its author's shard. The domain
//! operations (accounts, tweets, the follow graph, feeds) are methods on [`Inner`], reached
//! through a [`Node`]; callers see plain values ([`model`]) and one [`Error`], never a RocksDB
//! type. Image bytes live outside RocksDB in a content-addressed [`blobs`] store, validated and
//! stripped of metadata by [`imaging`].

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod accounts;
pub mod admin;
pub mod apps;
pub mod backup;
pub mod blobs;
pub mod cache;
mod celebrities;
mod datadir;
mod durable;
pub mod error;
mod fanout;
#[cfg(feature = "fault-injection")]
mod faults;
mod feed;
pub mod homecache;
pub mod ids;
pub mod imaging;
pub mod import;
pub mod media;
pub mod model;
pub mod moderation;
mod node;
mod outbox;
pub mod placement;
pub mod replica;
pub mod role;
pub mod search;
pub mod sessions;
mod shard;
mod slots;
mod social;
pub mod steps;
pub mod tweets;
pub mod verify;

pub use chirp_codec::{batch, doc, keys, text};

pub use accounts::{NewUser, ProfilePatch, Session};
pub use admin::{CompactJob, CompactProgress, CompactReport, NodeStats};
pub use apps::{NewApp, RegisteredApp};
pub use backup::{restore, BackupReport};
pub use cache::CacheStats;
pub use doc::{AppDoc, MediaDoc};
pub use error::{Error, Result};
pub use imaging::MediaType;
pub use import::{ImportProgress, ImportReport, ImportSet, ImportTweet, ImportUser};
pub use model::{Page, PageRequest, Profile, Tweet};
pub use moderation::{Account, MintedToken, PasswordReset};
pub use node::{Inner, Node, NodeConfig};
pub use node::{NodeRole, OpenMode};
pub use placement::{Placement, ShardId};
pub use replica::LogPosition;
pub use search::TagQuery;
pub use sessions::{Authenticated, SessionInfo, TokenState};
pub use shard::{cache_only, track_writes, LeaseCheck, ShardShared};
pub use steps::stale_reads;
pub use steps::{Remote, Reply, Step, StepFailure};
pub use tweets::NewTweet;
pub use verify::{Finding, VerifyReport};
