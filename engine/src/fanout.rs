//! The fan-out worker: copies posted tweets into followers' `home` rows and removes deleted
//! ones, driven by the durable `outbox`.
//!
//! A job is a tweet id whose outbox row says what to do. The row was written in the same batch
//! as the tweet, so a crash only delays a job: start-up re-enqueues every outbox row. Jobs are
//! idempotent (puts and deletes of fixed keys), so running one twice is harmless.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::batch::Batch;
use crossbeam::channel::{Receiver, RecvTimeoutError};

use crate::doc::{self, FanoutDoc};
use crate::error::Result;
use crate::ids;
use crate::keys::{self, CF_FOLLOWERS, CF_HOME, CF_OUTBOX};
use crate::node::Inner;

/// Followers read per step of a fan-out.
const FOLLOWER_CHUNK: usize = 4096;
/// A home feed is trimmed back to its cap after this many inserts.
const TRIM_EVERY: u32 = 64;

/// Runs jobs until the node stops.
pub(crate) fn run(inner: &Inner, jobs: Receiver<u64>) {
    let mut inserts: HashMap<u64, u32> = HashMap::new();
    while !inner.stopping.load(Ordering::SeqCst) {
        let id = match jobs.recv_timeout(Duration::from_millis(100)) {
            Ok(id) => id,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if let Err(e) = run_job(inner, id, &mut inserts) {
            // The outbox row stays, so the job runs again at the next start.
            tracing::error!(tweet = id, error = %e, "fan-out failed");
        }
        inner.fanout_pending.fetch_sub(1, Ordering::SeqCst);
    }
}

fn run_job(inner: &Inner, tweet: u64, inserts: &mut HashMap<u64, u32>) -> Result<()> {
    let Some(shard) = inner.tweet_shard(tweet) else {
        return Ok(());
    };
    let Some(raw) = shard.get(CF_OUTBOX, &keys::id_key(tweet))? else {
        return Ok(());
    };
    let job: FanoutDoc = doc::decode(&raw)?;
    let (author, adding) = match job {
        FanoutDoc::Post { author_id } => (author_id, true),
        FanoutDoc::Delete { author_id } => (author_id, false),
    };
    // Celebrities' tweets are merged at read time; their deletes only need hydration to skip.
    if !(adding && inner.is_celebrity(author)) {
        let started = std::time::Instant::now();
        let mut after = None;
        let mut total = 0usize;
        loop {
            let followers = shard.scan_pairs(CF_FOLLOWERS, author, after, FOLLOWER_CHUNK)?;
            let Some(&(last, _)) = followers.last() else {
                break;
            };
            after = Some(last);
            total += followers.len();
            write_home_rows(inner, tweet, author, adding, &followers, inserts)?;
            if followers.len() < FOLLOWER_CHUNK || inner.stopping.load(Ordering::SeqCst) {
                break;
            }
        }
        tracing::debug!(
            tweet,
            followers = total,
            adding,
            ms = started.elapsed().as_millis() as u64,
            "fan-out"
        );
    }
    // Drop the job unless a delete replaced it meanwhile (that one is queued behind us).
    if shard.get(CF_OUTBOX, &keys::id_key(tweet))?.as_deref() == Some(raw.as_slice()) {
        let mut batch = Batch::new();
        batch.delete(CF_OUTBOX, keys::id_key(tweet));
        shard.write_relaxed(batch)?;
    }
    Ok(())
}

fn write_home_rows(
    inner: &Inner,
    tweet: u64,
    author: u64,
    adding: bool,
    followers: &[(u64, Vec<u8>)],
    inserts: &mut HashMap<u64, u32>,
) -> Result<()> {
    let n = inner.shard_count();
    let mut batches: Vec<Option<Batch>> = (0..n).map(|_| None).collect();
    for &(follower, _) in followers {
        let s = ids::shard_of_user(follower, n);
        let batch = batches[s].get_or_insert_with(Batch::default);
        if adding {
            batch.put(
                CF_HOME,
                keys::pair_key(follower, tweet),
                keys::id_key(author),
            );
        } else {
            batch.delete(CF_HOME, keys::pair_key(follower, tweet));
        }
    }
    for (s, batch) in batches.into_iter().enumerate() {
        if let Some(batch) = batch {
            // Synced: the outbox row is dropped after this, and must not outlive the rows.
            inner.shards[s].write(batch)?;
        }
    }
    if adding {
        for &(follower, _) in followers {
            let count = inserts.entry(follower).or_insert(0);
            *count += 1;
            if *count >= TRIM_EVERY {
                *count = 0;
                trim_home(inner, follower)?;
            }
        }
    }
    Ok(())
}

/// Deletes the rows of a home feed beyond its cap.
fn trim_home(inner: &Inner, user: u64) -> Result<()> {
    let shard = inner.user_shard(user);
    let cap = inner.config.home_cap;
    let rows = shard.scan_pairs_rev(CF_HOME, user, u64::MAX, cap + 1)?;
    if rows.len() > cap {
        if let Some(&(oldest_kept, _)) = rows.get(cap - 1) {
            let mut batch = Batch::new();
            batch.delete_range(
                CF_HOME,
                keys::pair_key(user, 0),
                keys::pair_key(user, oldest_kept),
            );
            shard.write(batch)?;
        }
    }
    Ok(())
}
