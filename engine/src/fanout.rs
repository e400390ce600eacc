//! The fan-out worker: copies posted tweets into followers' `home` rows and removes deleted
//! ones, driven by the durable `outbox`.
//!
//! A job is a tweet id whose outbox row says what to do. The row was written in the same batch
//! as the tweet, so a crash only delays a job: start-up re-enqueues every outbox row. Jobs are
//! idempotent (puts and deletes of fixed keys), so running one twice is harmless. A job that
//! fails keeps its row and runs again after a backoff (100 ms doubling to 10 s) while the
//! node runs; it counts as done only once its row is gone. How jobs reach a worker (bounded
//! queues, the outbox sweep) is in `outbox.rs`.
//!
//! Several workers run at once, each owning the jobs whose tweet id maps to it (so a post and
//! the delete of the same tweet run in order). A worker takes every job waiting for it as one
//! group: home rows are written without fsync, then each shard touched syncs its WAL once, and
//! only then are the group's outbox rows dropped. One fsync per shard per group, not per row
//! batch, is what lets fan-out keep up with bursts.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::batch::Batch;
use crossbeam::channel::{Receiver, RecvTimeoutError};

use crate::doc::{self, FanoutDoc};
use crate::error::Result;
use crate::ids;
use crate::keys::{self, CF_FOLLOWERS, CF_HOME, CF_OUTBOX};
use crate::node::Inner;
use crate::steps::Step;

/// Followers read per step of a fan-out.
const FOLLOWER_CHUNK: usize = 4096;
/// A home feed is trimmed back to its cap after this many inserts at most (a trim reads the
/// cap's worth of rows, so it is amortized over many inserts); small caps trim sooner, every
/// quarter of the cap, so a feed holds at most about 1.25 × its cap.
const TRIM_EVERY: u32 = 256;
/// Most jobs handled as one group.
const MAX_GROUP: usize = 256;
/// The first wait before running a failed job again; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest wait between two runs of a failing job.
const RETRY_MAX: Duration = Duration::from_secs(10);
/// Failed jobs a worker keeps for retrying; past this, they are left to the outbox sweep.
const MAX_RETRYING: usize = 4096;

/// Inserts into one feed between two trims.
fn trim_every(home_cap: usize) -> u32 {
    (home_cap / 4).clamp(1, TRIM_EVERY as usize) as u32
}

/// A failed job waiting to run again.
struct Retry {
    due: Instant,
    wait: Duration,
}

/// Runs this worker's jobs until the node stops. A job is finished only once its outbox row
/// is gone; a failed one runs again after a backoff, while the node runs.
pub(crate) fn run(inner: &Inner, jobs: Receiver<u64>) {
    let mut retrying: HashMap<u64, Retry> = HashMap::new();
    while !inner.stopping.load(Ordering::SeqCst) {
        let now = Instant::now();
        let wait = retrying
            .values()
            .map(|r| r.due.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_millis(100))
            .min(Duration::from_millis(100));
        let mut group = Vec::new();
        match jobs.recv_timeout(wait) {
            Ok(id) => group.push(id),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(id) => group.push(id),
                Err(_) => break,
            }
        }
        // A job queued again (by a sweep) while it waits for its retry keeps its backoff; one
        // queued twice runs once.
        let before = group.len();
        let mut seen = HashSet::with_capacity(group.len());
        group.retain(|id| !retrying.contains_key(id) && seen.insert(*id));
        inner.fanout.settled((before - group.len()) as u64);
        let now = Instant::now();
        let due: Vec<u64> = retrying
            .iter()
            .filter(|(_, r)| r.due <= now)
            .map(|(&id, _)| id)
            .take(MAX_GROUP)
            .collect();
        let mut waits = HashMap::with_capacity(due.len());
        for id in &due {
            if let Some(r) = retrying.remove(id) {
                waits.insert(*id, r.wait);
            }
        }
        inner
            .fanout
            .retries
            .fetch_add(due.len() as u64, Ordering::Relaxed);
        group.extend(due);
        if group.is_empty() {
            continue;
        }
        let failed = run_group(inner, &group);
        let finished = group.len() - failed.len();
        inner
            .fanout
            .done
            .fetch_add(finished as u64, Ordering::Relaxed);
        inner.fanout.settled(finished as u64);
        if failed.is_empty() {
            continue;
        }
        inner
            .fanout
            .failures
            .fetch_add(failed.len() as u64, Ordering::Relaxed);
        // Jobs of a shard no longer primary here (demoted): the rows stay in the outbox, and
        // a promotion queues them again.
        let (failed, demoted): (Vec<u64>, Vec<u64>) = failed.into_iter().partition(|&id| {
            inner
                .placement
                .of_id(id)
                .is_some_and(|s| inner.is_primary_of(s))
        });
        inner.fanout.settled(demoted.len() as u64);
        for id in failed {
            if retrying.len() >= MAX_RETRYING {
                inner.fanout.settled(1);
                inner.fanout.leave_for_sweep(1);
                continue;
            }
            let wait = waits
                .get(&id)
                .map_or(RETRY_FIRST, |w| (*w * 2).min(RETRY_MAX));
            retrying.insert(
                id,
                Retry {
                    due: Instant::now() + wait,
                    wait,
                },
            );
        }
    }
}

/// Runs a group of jobs; returns the ones that failed (their outbox rows stay).
fn run_group(inner: &Inner, group: &[u64]) -> Vec<u64> {
    let mut touched = vec![false; inner.shard_count()];
    let mut finished = Vec::with_capacity(group.len());
    let mut failed = Vec::new();
    let mut rows = 0;
    for &tweet in group {
        match run_job(inner, tweet, &mut touched) {
            Ok(Some((raw, written))) => {
                finished.push((tweet, raw));
                rows += written;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(tweet, error = %e, "fan-out failed; will retry");
                failed.push(tweet);
            }
        }
    }
    // The rows were written without fsync: make them durable before dropping their jobs.
    for (s, _) in touched.iter().enumerate().filter(|(_, t)| **t) {
        if let Err(e) = inner.placement.shard(s).and_then(|shard| shard.sync_wal()) {
            tracing::warn!(shard = s, error = %e, "fan-out sync failed; will retry");
            failed.extend(finished.iter().map(|&(tweet, _)| tweet));
            return failed;
        }
    }
    inner.fanout.rows.fetch_add(rows, Ordering::Relaxed);
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
        if let Err(e) = drop_job(inner, tweet, &raw) {
            tracing::warn!(tweet, error = %e, "dropping a fan-out job failed; will retry");
            failed.push(tweet);
        }
    }
    failed
}

/// Deletes a finished job's outbox row, unless a delete replaced it meanwhile (that job is
/// queued behind this one).
fn drop_job(inner: &Inner, tweet: u64, raw: &[u8]) -> Result<()> {
    let Some(shard) = inner.tweet_shard(tweet)? else {
        return Ok(());
    };
    if shard.get(CF_OUTBOX, &keys::id_key(tweet))?.as_deref() == Some(raw) {
        let mut batch = Batch::new();
        batch.delete(CF_OUTBOX, keys::id_key(tweet));
        shard.write_relaxed(batch)?;
    }
    Ok(())
}

/// Writes one job's home rows; returns its outbox row and how many rows it wrote or removed
/// when done (None if there was no job).
fn run_job(inner: &Inner, tweet: u64, touched: &mut [bool]) -> Result<Option<(Vec<u8>, u64)>> {
    let Some(shard) = inner.tweet_shard(tweet)? else {
        return Ok(None);
    };
    // A copy that is not the tweet's primary leaves the job to it (the row stays, and is
    // queued again if this copy is promoted).
    if !shard.is_writable() {
        return Ok(None);
    }
    let Some(raw) = shard.get(CF_OUTBOX, &keys::id_key(tweet))? else {
        return Ok(None);
    };
    let job: FanoutDoc = doc::decode(&raw)?;
    let (author, adding) = match job {
        FanoutDoc::Post { author_id } => (author_id, true),
        FanoutDoc::Delete { author_id } => (author_id, false),
    };
    if adding {
        // The post wrote the author's own home row; it counts toward the author's trim.
        count_insert(inner, author)?;
    }
    // Celebrities' tweets are merged at read time; their deletes only need hydration to skip.
    let mut total = 0usize;
    if !(adding && inner.celebrities.contains(author)) {
        let started = std::time::Instant::now();
        let mut after = None;
        loop {
            let followers = shard.scan_pairs(CF_FOLLOWERS, author, after, FOLLOWER_CHUNK)?;
            let Some(&(last, _)) = followers.last() else {
                break;
            };
            after = Some(last);
            total += followers.len();
            write_home_rows(inner, tweet, author, adding, &followers, touched)?;
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
    Ok(Some((raw, total as u64)))
}

fn write_home_rows(
    inner: &Inner,
    tweet: u64,
    author: u64,
    adding: bool,
    followers: &[(u64, Vec<u8>)],
    touched: &mut [bool],
) -> Result<()> {
    fail::fail_point!("fanout::copy", |_| Err(crate::error::Error::Storage(
        "failpoint fanout::copy".into()
    )));
    let mut per_shard: Vec<Vec<u64>> = vec![Vec::new(); inner.shard_count()];
    for &(follower, _) in followers {
        per_shard[inner.placement.of_user(follower)].push(follower);
    }
    for (s, followers) in per_shard.into_iter().enumerate() {
        if followers.is_empty() {
            continue;
        }
        if !inner.placement.holds(s) {
            // Held elsewhere: one durable step for the shard, which also counts the rows
            // toward those feeds' trims where they are.
            inner
                .step(Step::HomeRows {
                    tweet,
                    author,
                    adding,
                    followers,
                })?
                .done()?;
            continue;
        }
        let mut batch = Batch::new();
        for &follower in &followers {
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
        // Not synced here: the group syncs each touched shard once before dropping jobs.
        inner.placement.shard(s)?.write_relaxed(batch)?;
        touched[s] = true;
        if adding {
            for follower in followers {
                count_insert(inner, follower)?;
            }
        }
    }
    Ok(())
}

/// Counts a row written to `user`'s feed, trimming the feeds that are due.
pub(crate) fn count_insert(inner: &Inner, user: u64) -> Result<()> {
    let due = inner
        .fanout
        .inserts
        .add(user, trim_every(inner.config.home_cap));
    if let Some(evicted) = due.evicted {
        trim_home(inner, evicted)?;
    }
    if due.user {
        trim_home(inner, user)?;
    }
    Ok(())
}

/// Deletes the rows of a home feed beyond its cap.
fn trim_home(inner: &Inner, user: u64) -> Result<()> {
    let shard = inner.user_shard(user)?;
    let cap = inner.config.home_cap;
    let rows = shard.scan_pairs_rev(CF_HOME, user, u64::MAX, cap + 1)?;
    if rows.len() > cap {
        if let Some(&(oldest_kept, _)) = cap.checked_sub(1).and_then(|i| rows.get(i)) {
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
