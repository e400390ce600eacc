//! The fan-out worker: copies posted tweets into followers' `home` rows and removes deleted
//! ones, driven by the durable `outbox`.
//!
//! A job is a tweet id whose outbox row says what to do. The row was written in the same batch
//! as the tweet, so a crash only delays a job: start-up re-enqueues every outbox row. Jobs are
//! idempotent (puts and deletes of fixed keys), so running one twice is harmless.
//!
//! Several workers run at once, each owning the jobs whose tweet id maps to it (so a post and
//! the delete of the same tweet run in order). A worker takes every job waiting for it as one
//! group: home rows are written without fsync, then each shard touched syncs its WAL once, and
//! only then are the group's outbox rows dropped. One fsync per shard per group, not per row
//! batch, is what lets fan-out keep up with bursts.

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
/// A home feed is trimmed back to its cap after this many inserts (a trim reads the cap's
/// worth of rows, so it is amortized over many inserts).
const TRIM_EVERY: u32 = 256;
/// Most jobs handled as one group.
const MAX_GROUP: usize = 256;

/// Runs this worker's jobs until the node stops.
pub(crate) fn run(inner: &Inner, jobs: Receiver<u64>) {
    let mut inserts: HashMap<u64, u32> = HashMap::new();
    while !inner.stopping.load(Ordering::SeqCst) {
        let first = match jobs.recv_timeout(Duration::from_millis(100)) {
            Ok(id) => id,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(id) => group.push(id),
                Err(_) => break,
            }
        }
        if let Err(e) = run_group(inner, &group, &mut inserts) {
            // The outbox rows stay, so the jobs run again at the next start.
            tracing::error!(jobs = group.len(), error = %e, "fan-out failed");
        }
        inner
            .fanout_pending
            .fetch_sub(group.len() as u64, Ordering::SeqCst);
        inner
            .fanout
            .done
            .fetch_add(group.len() as u64, Ordering::Relaxed);
    }
}

fn run_group(inner: &Inner, group: &[u64], inserts: &mut HashMap<u64, u32>) -> Result<()> {
    let mut touched = vec![false; inner.shard_count()];
    let mut finished = Vec::with_capacity(group.len());
    for &tweet in group {
        match run_job(inner, tweet, &mut touched, inserts) {
            Ok(Some(raw)) => finished.push((tweet, raw)),
            Ok(None) => {}
            Err(e) => tracing::error!(tweet, error = %e, "fan-out failed"),
        }
    }
    // The rows were written without fsync: make them durable before dropping their jobs.
    for (s, _) in touched.iter().enumerate().filter(|(_, t)| **t) {
        inner.shards[s].sync_wal()?;
    }
    // The lag of a post is how long after posting its followers could see it; the group's
    // newest post stands for the group.
    let newest_post = finished
        .iter()
        .filter(|(_, raw)| matches!(doc::decode(raw), Ok(FanoutDoc::Post { .. })))
        .map(|&(tweet, _)| tweet)
        .max();
    if let Some(tweet) = newest_post {
        let lag = ids::now_unix_ms().saturating_sub(ids::unix_ms_of_id(tweet));
        inner.fanout.last_lag_ms.store(lag, Ordering::Relaxed);
    }
    for (tweet, raw) in finished {
        let Some(shard) = inner.tweet_shard(tweet) else {
            continue;
        };
        // Drop the job unless a delete replaced it meanwhile (that one is queued behind us).
        if shard.get(CF_OUTBOX, &keys::id_key(tweet))?.as_deref() == Some(raw.as_slice()) {
            let mut batch = Batch::new();
            batch.delete(CF_OUTBOX, keys::id_key(tweet));
            shard.write_relaxed(batch)?;
        }
    }
    Ok(())
}

/// Writes one job's home rows; returns its outbox row when done (None if there was no job).
fn run_job(
    inner: &Inner,
    tweet: u64,
    touched: &mut [bool],
    inserts: &mut HashMap<u64, u32>,
) -> Result<Option<Vec<u8>>> {
    let Some(shard) = inner.tweet_shard(tweet) else {
        return Ok(None);
    };
    let Some(raw) = shard.get(CF_OUTBOX, &keys::id_key(tweet))? else {
        return Ok(None);
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
            write_home_rows(inner, tweet, author, adding, &followers, touched, inserts)?;
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
    Ok(Some(raw))
}

fn write_home_rows(
    inner: &Inner,
    tweet: u64,
    author: u64,
    adding: bool,
    followers: &[(u64, Vec<u8>)],
    touched: &mut [bool],
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
            // Not synced here: the group syncs each touched shard once before dropping jobs.
            inner.shards[s].write_relaxed(batch)?;
            touched[s] = true;
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
            // A lost trim only leaves a few extra rows until the next one.
            shard.write_relaxed(batch)?;
        }
    }
    Ok(())
}
