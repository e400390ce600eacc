//! Bulk import: loads many new users, the follow edges among them and their tweets straight
//! into SST files that are ingested into the shards, instead of millions of API calls.
//!
//! This is the operator path for seeding a node (a migration from another system, or the
//! synthetic network of `chirp-load generate`). Run it on a node that is not serving: it holds
//! the handle lock for its whole run, and it is not atomic across column families (a failed
//! import leaves a partial one, so import into a copy of the data dir and swap it in). Rows are
//! written in key order per (column family, shard) with RocksDB's SstFileWriter, so ingestion
//! places them without compaction; counters are written as merge operands, so they add to
//! whatever a shard already counts. The rows are the same the domain layer writes one by one:
//! profiles, handles, password credentials, both sides of every edge, tweets, user timelines,
//! materialized home feeds (newest `home_cap`, celebrities left to the read-time merge) and the
//! followers / following / tweets counters. Imported tweets go into the hashtag index. Nothing
//! is written to the oplog: replicas of an imported shard bootstrap again from a checkpoint.

mod sst;

use std::collections::HashSet;
use std::path::Path;

use serde_json::Map;

use crate::accounts::{check_display_name, valid_handle};
use crate::doc::{self, PasswordDoc, ProfileDoc, TweetDoc};
use crate::error::{Error, Result};
use crate::ids::{self, now_unix_ms};
use crate::keys::{self, Counter};
use crate::node::Inner;
use crate::text;
use sst::{Built, CfOptions, CfSinks};

/// A user to create.
#[derive(Debug, Clone)]
pub struct ImportUser {
    /// Handle (must be free, and unique within the import).
    pub handle: String,
    /// Display name.
    pub display_name: String,
    /// The argon2 PHC string of the password (see [`crate::accounts::hash_password`]).
    pub password_phc: String,
}

/// A tweet to create.
#[derive(Debug, Clone)]
pub struct ImportTweet {
    /// Index of the author in [`ImportSet::users`].
    pub author: u32,
    /// The text (checked like a posted tweet's).
    pub text: String,
}

/// Everything one import creates. Users are referred to by their index in `users`.
#[derive(Debug, Clone, Default)]
pub struct ImportSet {
    /// New users, in the order their ids are assigned.
    pub users: Vec<ImportUser>,
    /// Follow edges as (follower, followee) indices; duplicates are dropped.
    pub follows: Vec<(u32, u32)>,
    /// Tweets; each author's are posted in the order given (later = newer).
    pub tweets: Vec<ImportTweet>,
}

/// What an import wrote.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    /// The id given to each user, by index.
    pub user_ids: Vec<u64>,
    /// Rows written per column family.
    pub rows: Vec<(&'static str, u64)>,
    /// SST files ingested.
    pub files: usize,
}

/// Progress callbacks, so a tool can draw bars; every method has a no-op default.
pub trait ImportProgress: Sync {
    /// A phase of `total` units starts.
    fn phase(&self, _name: &'static str, _total: u64) {}
    /// `n` more units of the current phase are done.
    fn advance(&self, _n: u64) {}
}

impl ImportProgress for () {}

const PROGRESS_STEP: u64 = 10_000;

impl Inner {
    /// Bulk-loads `set` (see the module docs); returns the new users' ids.
    pub fn import(
        &self,
        mut set: ImportSet,
        progress: &dyn ImportProgress,
    ) -> Result<ImportReport> {
        // Ingested files bypass the write gate: a replica's dir (or one opened to inspect)
        // must be refused here, before anything is written.
        if !self.is_writable() {
            return Err(Error::NotPrimary(self.shared().primary_hint()));
        }
        if self.placement.local_ids().len() != self.placement.count() {
            return Err(Error::invalid(
                "data",
                "a bulk import writes every shard: it needs a node holding all of them",
            ));
        }
        let n = set.users.len();
        if n >= u32::MAX as usize {
            return Err(Error::invalid("users", "at most 2^32 - 2 users per import"));
        }
        let _guard = self.lock_handles();
        progress.phase("checking users", n as u64);
        let lowers = self.check_users(&set.users, progress)?;
        // Packed and sorted in a copy; the caller's list is freed (100M edges are 800 MB each).
        let follows = sorted_follows(&std::mem::take(&mut set.follows), n)?;

        // Minted on the shards in turn, then sorted: the files are written in user order,
        // which must be key (id) order.
        let mut user_ids = set
            .users
            .iter()
            .map(|_| self.placement.mint_user(self.new_user_shard()?))
            .collect::<Result<Vec<u64>>>()?;
        user_ids.sort_unstable();
        let mut followers = vec![0u32; n];
        for &edge in &follows {
            followers[(edge & 0xFFFF_FFFF) as usize] += 1;
        }
        let celebrity: Vec<bool> = followers
            .iter()
            .map(|&f| u64::from(f) > self.config.celebrity_threshold)
            .collect();

        let tmp = self.config.data_dir.join("import.tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        let mut built = Vec::new();
        progress.phase("writing tweets", set.tweets.len() as u64);
        let (by_author, tweet_ids, tweet_counts) =
            self.write_tweets(&tmp, &set, &user_ids, progress, &mut built)?;
        progress.phase("writing users", n as u64);
        self.write_users(&tmp, &set.users, &lowers, &user_ids, progress, &mut built)?;
        self.write_counters(
            &tmp,
            &follows,
            &followers,
            &tweet_counts,
            &user_ids,
            &mut built,
        )?;

        progress.phase(
            "writing follow edges and home feeds",
            2 * follows.len() as u64,
        );
        let feeds = Feeds {
            user_ids: &user_ids,
            by_author: &by_author,
            tweet_ids: &tweet_ids,
            celebrity: &celebrity,
        };
        let (a, b) = std::thread::scope(|s| {
            let reverse = s.spawn(|| self.write_followers(&tmp, &follows, &user_ids, progress));
            let forward = self.write_following_and_home(&tmp, &follows, &feeds, progress);
            (forward, reverse.join())
        });
        built.extend(a?);
        built.push(b.map_err(|_| Error::Storage("import thread panicked".into()))??);

        // Handles last: a user becomes reachable only once every other row is in.
        built.sort_by_key(|b| b.cf == keys::CF_HANDLES);
        progress.phase("ingesting", built.len() as u64);
        let mut report = ImportReport::default();
        for b in &built {
            for (shard, files) in self.placement.local().zip(&b.files) {
                shard.ingest(b.cf, files)?;
                report.files += files.len();
            }
            report.rows.push((b.cf, b.rows));
            progress.advance(1);
        }
        std::fs::remove_dir_all(&tmp)?;
        self.fence_oplog_after_import()?;
        for (i, &f) in followers.iter().enumerate() {
            if celebrity[i] {
                self.celebrities.note(user_ids[i], u64::from(f));
            }
        }
        report.user_ids = user_ids;
        Ok(report)
    }

    /// Ingested files bypass the oplog, so no replica could replay them. Each shard logs two
    /// marker entries and trims every entry before the second (the oplog always keeps its last
    /// entry, so two are needed for the oldest one held to be past the position of any replica,
    /// even on a new shard). A replica behind it is told its entries were trimmed and
    /// bootstraps from a checkpoint, which holds the imported rows.
    fn fence_oplog_after_import(&self) -> Result<()> {
        for shard in self.placement.local() {
            for _ in 0..2 {
                let mut marker = crate::batch::Batch::new();
                let now = crate::ids::now_unix_ms().to_be_bytes();
                marker.put(keys::CF_META, keys::META_IMPORT_MARKER, now);
                shard.write(marker)?;
            }
            shard.trim_oplog(shard.last_lsn())?;
        }
        Ok(())
    }

    fn check_users(
        &self,
        users: &[ImportUser],
        progress: &dyn ImportProgress,
    ) -> Result<Vec<String>> {
        let mut seen = HashSet::with_capacity(users.len());
        let mut lowers = Vec::with_capacity(users.len());
        for (i, u) in users.iter().enumerate() {
            if !valid_handle(&u.handle) {
                return Err(Error::invalid(
                    "handle",
                    format!("user {i}: bad handle {:?}", u.handle),
                ));
            }
            check_display_name(&u.display_name)?;
            let lower = u.handle.to_ascii_lowercase();
            let shard = self.placement.handle(&lower)?;
            if !seen.insert(lower.clone())
                || shard.contains(keys::CF_HANDLES, &keys::handle_key(&lower))?
            {
                return Err(Error::Conflict {
                    field: "handle",
                    message: format!("@{} is taken", u.handle),
                });
            }
            lowers.push(lower);
            if (i as u64).is_multiple_of(PROGRESS_STEP) {
                progress.advance(PROGRESS_STEP.min((users.len() - i) as u64));
            }
        }
        Ok(lowers)
    }

    /// Tweets and user timelines; returns per-author offsets into the tweet ids, the ids (each
    /// author's ascending) and each author's count.
    fn write_tweets(
        &self,
        tmp: &Path,
        set: &ImportSet,
        user_ids: &[u64],
        progress: &dyn ImportProgress,
        built: &mut Vec<Built>,
    ) -> Result<(Vec<usize>, Vec<u64>, Vec<u32>)> {
        let n = set.users.len();
        let mut order: Vec<u32> = (0..set.tweets.len() as u32).collect();
        order.sort_by_key(|&t| set.tweets[t as usize].author);
        let (o_tweets, o_timeline) = (
            CfOptions::new(self, keys::CF_TWEETS),
            CfOptions::new(self, keys::CF_USER_TWEETS),
        );
        let mut tweets = CfSinks::new(&o_tweets, tmp)?;
        let mut timeline = CfSinks::new(&o_timeline, tmp)?;
        let mut counts = vec![0u32; n];
        let mut tweet_ids = Vec::with_capacity(order.len());
        for (done, &t) in order.iter().enumerate() {
            let tweet = &set.tweets[t as usize];
            let author = tweet.author as usize;
            let author_id = *user_ids.get(author).ok_or_else(|| {
                Error::invalid("tweets", format!("tweet {t}: no author {author}"))
            })?;
            let body = text::validate_tweet(&tweet.text)
                .map_err(|e| Error::invalid("text", format!("tweet {t}: {e}")))?;
            let shard = self.placement.of_user(author_id);
            let id = self.placement.mint_tweet(shard)?;
            let doc = TweetDoc {
                id,
                author_id,
                author_handle: set.users[author].handle.clone(),
                hashtags: text::extract_hashtags(&body),
                text: body,
                media: Vec::new(),
                created_at_ms: ids::unix_ms_of_id(id),
                extra: Map::new(),
                rest: Map::new(),
                encoded: Default::default(),
            };
            tweets
                .shard(shard)
                .put(&keys::id_key(id), &doc::encode(&doc)?)?;
            timeline
                .shard(shard)
                .put(&keys::pair_key(author_id, id), &[])?;
            // Ids ascend per shard here, as the index's insertion order wants; the node is not
            // serving, so no search can hydrate the tweet before its row is ingested.
            self.hashtags.insert(&doc)?;
            counts[author] += 1;
            tweet_ids.push(id);
            if (done as u64).is_multiple_of(PROGRESS_STEP) {
                progress.advance(PROGRESS_STEP.min((order.len() - done) as u64));
            }
        }
        let mut by_author = vec![0usize; n + 1];
        for (i, &c) in counts.iter().enumerate() {
            by_author[i + 1] = by_author[i] + c as usize;
        }
        built.push(tweets.finish()?);
        built.push(timeline.finish()?);
        Ok((by_author, tweet_ids, counts))
    }

    fn write_users(
        &self,
        tmp: &Path,
        users: &[ImportUser],
        lowers: &[String],
        user_ids: &[u64],
        progress: &dyn ImportProgress,
        built: &mut Vec<Built>,
    ) -> Result<()> {
        let (o_profiles, o_auth, o_handles) = (
            CfOptions::new(self, keys::CF_PROFILES),
            CfOptions::new(self, keys::CF_AUTH),
            CfOptions::new(self, keys::CF_HANDLES),
        );
        let mut profiles = CfSinks::new(&o_profiles, tmp)?;
        let mut auth = CfSinks::new(&o_auth, tmp)?;
        let now = now_unix_ms();
        for (i, (u, &id)) in users.iter().zip(user_ids).enumerate() {
            let shard = self.placement.of_user(id);
            let profile = ProfileDoc {
                id,
                handle: u.handle.clone(),
                display_name: u.display_name.clone(),
                bio: String::new(),
                avatar_url: String::new(),
                created_at_ms: now,
                extra: Map::new(),
                suspended: false,
                rest: Map::new(),
            };
            profiles
                .shard(shard)
                .put(&keys::id_key(id), &doc::encode(&profile)?)?;
            let cred = PasswordDoc {
                phc: u.password_phc.clone(),
                email: None,
            };
            auth.shard(shard)
                .put(&keys::password_key(id), &doc::encode(&cred)?)?;
            if (i as u64).is_multiple_of(PROGRESS_STEP) {
                progress.advance(PROGRESS_STEP.min((users.len() - i) as u64));
            }
        }
        // Handle keys sort as strings, not in id order: sort them per shard first.
        let mut by_handle: Vec<(usize, &str, u64)> = lowers
            .iter()
            .zip(user_ids)
            .map(|(l, &id)| (self.placement.of_handle(l), l.as_str(), id))
            .collect();
        by_handle.sort_unstable();
        let mut handles = CfSinks::new(&o_handles, tmp)?;
        for (shard, lower, id) in by_handle {
            handles
                .shard(shard)
                .put(&keys::handle_key(lower), &keys::id_key(id))?;
        }
        built.push(profiles.finish()?);
        built.push(auth.finish()?);
        built.push(handles.finish()?);
        Ok(())
    }

    fn write_counters(
        &self,
        tmp: &Path,
        follows: &[u64],
        followers: &[u32],
        tweets: &[u32],
        user_ids: &[u64],
        built: &mut Vec<Built>,
    ) -> Result<()> {
        let mut following = vec![0u32; user_ids.len()];
        for &edge in follows {
            following[(edge >> 32) as usize] += 1;
        }
        let opts = CfOptions::new(self, keys::CF_COUNTERS);
        let mut sinks = CfSinks::new(&opts, tmp)?;
        for (i, &id) in user_ids.iter().enumerate() {
            let sink = sinks.shard(self.placement.of_user(id));
            // Kinds in key order: followers (1), following (2), tweets (3).
            for (kind, count) in [
                (Counter::Followers, followers[i]),
                (Counter::Following, following[i]),
                (Counter::Tweets, tweets[i]),
            ] {
                if count > 0 {
                    sink.merge(
                        &keys::counter_key(id, kind),
                        &keys::counter_value(i64::from(count)),
                    )?;
                }
            }
        }
        built.push(sinks.finish()?);
        Ok(())
    }

    fn write_following_and_home(
        &self,
        tmp: &Path,
        follows: &[u64],
        feeds: &Feeds<'_>,
        progress: &dyn ImportProgress,
    ) -> Result<Vec<Built>> {
        let (o_following, o_home) = (
            CfOptions::new(self, keys::CF_FOLLOWING),
            CfOptions::new(self, keys::CF_HOME),
        );
        let mut following = CfSinks::new(&o_following, tmp)?;
        let mut home = CfSinks::new(&o_home, tmp)?;
        let cap = self.config.home_cap;
        let mut rows: Vec<(u64, u64)> = Vec::new();
        let mut next = 0;
        for (reader, &reader_id) in feeds.user_ids.iter().enumerate() {
            let shard = self.placement.of_user(reader_id);
            rows.clear();
            feeds.push_tweets(reader, &mut rows);
            let start = next;
            while next < follows.len() && (follows[next] >> 32) as usize == reader {
                let followee = (follows[next] & 0xFFFF_FFFF) as usize;
                following
                    .shard(shard)
                    .put(&keys::pair_key(reader_id, feeds.user_ids[followee]), &[])?;
                if !feeds.celebrity[followee] {
                    feeds.push_tweets(followee, &mut rows);
                }
                next += 1;
            }
            // Keep the newest `cap`, written in ascending key order.
            rows.sort_unstable();
            let skip = rows.len().saturating_sub(cap);
            for &(tweet, author) in &rows[skip..] {
                home.shard(shard)
                    .put(&keys::pair_key(reader_id, tweet), &keys::id_key(author))?;
            }
            if next - start > 0 {
                progress.advance((next - start) as u64);
            }
        }
        Ok(vec![following.finish()?, home.finish()?])
    }

    fn write_followers(
        &self,
        tmp: &Path,
        follows: &[u64],
        user_ids: &[u64],
        progress: &dyn ImportProgress,
    ) -> Result<Built> {
        let mut reversed: Vec<u64> = follows.iter().map(|e| e.rotate_left(32)).collect();
        reversed.sort_unstable();
        let opts = CfOptions::new(self, keys::CF_FOLLOWERS);
        let mut sinks = CfSinks::new(&opts, tmp)?;
        for (i, &edge) in reversed.iter().enumerate() {
            let followee = user_ids[(edge >> 32) as usize];
            let follower = user_ids[(edge & 0xFFFF_FFFF) as usize];
            sinks
                .shard(self.placement.of_user(followee))
                .put(&keys::pair_key(followee, follower), &[])?;
            if (i as u64).is_multiple_of(PROGRESS_STEP) {
                progress.advance(PROGRESS_STEP.min((reversed.len() - i) as u64));
            }
        }
        sinks.finish()
    }
}

/// What building a home feed needs: every author's tweets and who is a celebrity.
struct Feeds<'a> {
    user_ids: &'a [u64],
    by_author: &'a [usize],
    tweet_ids: &'a [u64],
    celebrity: &'a [bool],
}

impl Feeds<'_> {
    fn push_tweets(&self, author: usize, rows: &mut Vec<(u64, u64)>) {
        let id = self.user_ids[author];
        let tweets = &self.tweet_ids[self.by_author[author]..self.by_author[author + 1]];
        rows.extend(tweets.iter().map(|&t| (t, id)));
    }
}

/// Packs edges as follower << 32 | followee, sorted and deduplicated; refuses bad indices
/// and self-follows.
fn sorted_follows(follows: &[(u32, u32)], n: usize) -> Result<Vec<u64>> {
    let mut packed = Vec::with_capacity(follows.len());
    for &(a, b) in follows {
        if a as usize >= n || b as usize >= n || a == b {
            return Err(Error::invalid("follows", format!("bad edge ({a}, {b})")));
        }
        packed.push(u64::from(a) << 32 | u64::from(b));
    }
    packed.sort_unstable();
    packed.dedup();
    Ok(packed)
}
