//! The fan-out queues in front of the workers (`fanout.rs`), and the sweep that keeps the
//! durable `outbox` and the queues in step.
//!
//! The outbox row, written with the tweet, is the job; a queue only carries its tweet id, as
//! a hint that it is ready. Queues are bounded, so a burst of posts cannot grow memory
//! without limit: when a worker's queue is full, posting does not wait, it leaves the job in
//! the outbox and marks a sweep due. The sweep (on the maintenance thread, at most once per
//! [`SWEEP_EVERY`]) reads every outbox row and queues it, waiting for room, so every row is
//! queued again after an overflow, a job handed back by a worker, a start or a promotion.
//! Queuing a job twice is harmless: jobs are idempotent, and a job whose row is gone is a
//! no-op.
//!
//! Also here: per-user counts of home rows written since the feed was last trimmed, shared by
//! every worker (a tweet's worker is chosen by its id, so one feed gets rows from all of
//! them) and bounded in memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender, TrySendError};

use crate::error::Result;
use crate::keys::{self, CF_OUTBOX};
use crate::node::Inner;

/// Jobs a worker's queue holds; past this, jobs wait in the outbox for the sweep.
pub(crate) const QUEUE_CAP: usize = 1024;
/// How often the sweep looks for room in a full queue.
const ROOM_POLL: Duration = Duration::from_millis(10);
/// Least time between two sweeps of the outbox.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Stripes of the per-user insert counts.
const INSERT_STRIPES: usize = 64;
/// Users tracked per stripe (about 260k in all, a few MiB); past it, one is trimmed and
/// forgotten to make room.
const INSERTS_PER_STRIPE: usize = 4096;

/// The queues, the counts the workers report and the per-user insert counts.
pub(crate) struct FanoutQueues {
    txs: Vec<Sender<u64>>,
    /// Jobs in a queue, running, or waiting in a worker to be retried.
    pending: AtomicU64,
    /// Jobs left in the outbox for the sweep (a full queue, a worker's retry list full).
    unqueued: AtomicU64,
    /// Set when some outbox row is in no queue; the sweep clears it.
    sweep_due: AtomicBool,
    last_sweep: Mutex<Option<Instant>>,
    /// Jobs finished (their outbox row gone or replaced) since the node opened.
    pub(crate) done: AtomicU64,
    /// Milliseconds from the last fanned-out tweet's posting to the end of its fan-out.
    pub(crate) last_lag_ms: AtomicU64,
    /// Home rows written (or removed) by finished jobs and synced, since the node opened.
    pub(crate) rows: AtomicU64,
    /// Job runs that failed (each is retried).
    pub(crate) failures: AtomicU64,
    /// Runs of a job after a failure.
    pub(crate) retries: AtomicU64,
    /// Jobs left to the sweep because a queue was full.
    pub(crate) overflows: AtomicU64,
    /// Home rows written per user since the user's feed was last trimmed.
    pub(crate) inserts: HomeInserts,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The worker that runs a tweet's jobs, so a post and the delete of one tweet run in order.
/// The id is mixed first: its low bits are a per-millisecond sequence, mostly 0.
fn worker_of(tweet_id: u64, workers: usize) -> usize {
    let mixed = tweet_id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((mixed >> 32) % workers.max(1) as u64) as usize
}

impl FanoutQueues {
    /// `workers` bounded queues and their receivers.
    pub(crate) fn new(workers: usize) -> (FanoutQueues, Vec<Receiver<u64>>) {
        let (txs, rxs) = (0..workers.max(1))
            .map(|_| crossbeam::channel::bounded(QUEUE_CAP))
            .unzip();
        let queues = FanoutQueues {
            txs,
            pending: AtomicU64::new(0),
            unqueued: AtomicU64::new(0),
            sweep_due: AtomicBool::new(false),
            last_sweep: Mutex::new(None),
            done: AtomicU64::new(0),
            last_lag_ms: AtomicU64::new(0),
            rows: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            overflows: AtomicU64::new(0),
            inserts: HomeInserts::new(),
        };
        (queues, rxs)
    }

    /// A worker is done with `jobs` jobs it was handed (finished, or handed back).
    pub(crate) fn settled(&self, jobs: u64) {
        self.pending.fetch_sub(jobs, Ordering::SeqCst);
    }

    /// Leaves `jobs` jobs to the next sweep (their outbox rows stay).
    pub(crate) fn leave_for_sweep(&self, jobs: u64) {
        self.unqueued.fetch_add(jobs, Ordering::SeqCst);
        self.sweep_due.store(true, Ordering::SeqCst);
    }
}

impl Inner {
    /// Hands a tweet id with an outbox row to its fan-out worker without waiting: if the
    /// queue is full the job stays in the outbox for the sweep; if no worker runs (a tool
    /// opened the dir) it stays there for the next start.
    pub(crate) fn enqueue_fanout(&self, tweet_id: u64) {
        let q = &self.fanout;
        let Some(tx) = q.txs.get(worker_of(tweet_id, q.txs.len())) else {
            return;
        };
        // Counted first: the worker may finish the job before `try_send` returns.
        q.pending.fetch_add(1, Ordering::SeqCst);
        match tx.try_send(tweet_id) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                q.settled(1);
                q.overflows.fetch_add(1, Ordering::Relaxed);
                q.leave_for_sweep(1);
            }
            Err(TrySendError::Disconnected(_)) => q.settled(1),
        }
    }

    /// Queues a job, waiting for room; false if the node is stopping or no worker runs.
    ///
    /// The job is counted in `pending` only once its queue has room: a job the sweep hands
    /// over is still counted in `unqueued` until the sweep ends, so counting it while the
    /// sweep waits for a full queue would report one job twice for as long as the queue stays
    /// full (a stopped worker: for as long as it is stopped).
    fn enqueue_waiting(&self, tweet_id: u64) -> bool {
        let q = &self.fanout;
        let Some(tx) = q.txs.get(worker_of(tweet_id, q.txs.len())) else {
            return false;
        };
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                return false;
            }
            if tx.is_full() {
                std::thread::sleep(ROOM_POLL);
                continue;
            }
            // Counted first: the worker may finish the job before `try_send` returns.
            q.pending.fetch_add(1, Ordering::SeqCst);
            match tx.try_send(tweet_id) {
                Ok(()) => return true,
                // A post took the room first.
                Err(TrySendError::Full(_)) => q.settled(1),
                Err(TrySendError::Disconnected(_)) => {
                    q.settled(1);
                    return false;
                }
            }
        }
    }

    /// Marks every outbox row for the sweep (at start, or on promotion); the maintenance
    /// thread queues them.
    pub(crate) fn resume_fanout(&self) -> Result<()> {
        let mut pending = 0;
        // Only the shards this node is the primary of: a replica's outbox rows are its
        // primary's jobs.
        for shard in self.placement.local().filter(|s| s.is_writable()) {
            pending += shard.scan_all(CF_OUTBOX)?.len() as u64;
        }
        if pending > 0 {
            tracing::info!(pending, "resuming fan-out left in the outbox");
            self.fanout.leave_for_sweep(pending);
        }
        Ok(())
    }

    /// If a sweep is due and the last one is [`SWEEP_EVERY`] old, queues every outbox row.
    pub(crate) fn sweep_outbox(&self) -> Result<()> {
        let q = &self.fanout;
        {
            let mut last = lock(&q.last_sweep);
            if last.is_some_and(|t| t.elapsed() < SWEEP_EVERY) {
                return Ok(());
            }
            if !q.sweep_due.swap(false, Ordering::SeqCst) {
                return Ok(());
            }
            *last = Some(Instant::now());
        }
        // Jobs left before this point have their rows in the outbox now (or are finished),
        // so this pass covers them; later ones set `sweep_due` again.
        let owed = q.unqueued.load(Ordering::SeqCst);
        let mut queued = 0u64;
        // Only the shards this node is the primary of: a replica's outbox rows are its
        // primary's jobs.
        for shard in self.placement.local().filter(|s| s.is_writable()) {
            let rows = match shard.scan_all(CF_OUTBOX) {
                Ok(rows) => rows,
                Err(e) => {
                    q.sweep_due.store(true, Ordering::SeqCst);
                    return Err(e);
                }
            };
            for (k, _) in rows {
                if let Some(id) = keys::decode_id(&k) {
                    if !self.enqueue_waiting(id) {
                        q.sweep_due.store(true, Ordering::SeqCst);
                        return Ok(());
                    }
                    queued += 1;
                }
            }
        }
        q.unqueued.fetch_sub(owed, Ordering::SeqCst);
        tracing::debug!(queued, "outbox swept");
        Ok(())
    }

    /// Fan-out jobs not finished in this process: queued, running, waiting for a retry, or
    /// left in the outbox for the sweep (posts and deletes whose followers' feeds are not
    /// all written yet).
    pub fn fanout_pending(&self) -> u64 {
        self.fanout.pending.load(Ordering::SeqCst) + self.fanout.unqueued.load(Ordering::SeqCst)
    }

    /// Waits until no fan-out job is pending, polling every 50 µs; false if `timeout` passed
    /// first. Benchmarks and tools use it to time a post until its fan-out is complete.
    pub fn wait_fanout_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.fanout_pending() > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        true
    }
}

/// Home rows written per user since the user's feed was last trimmed, shared by the workers.
/// A user leaves the map when trimmed, so it holds only feeds that grew since; when a stripe
/// is full, some other user is evicted and must be trimmed at once, so no count is lost.
pub(crate) struct HomeInserts {
    stripes: Vec<Mutex<HashMap<u64, u32>>>,
}

/// What counting an insert asks of the caller.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct TrimDue {
    /// The user counted is due a trim.
    pub(crate) user: bool,
    /// Another user was forgotten to make room and must be trimmed.
    pub(crate) evicted: Option<u64>,
}

impl HomeInserts {
    fn new() -> HomeInserts {
        HomeInserts {
            stripes: (0..INSERT_STRIPES)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
        }
    }

    /// Counts one row written to `user`'s feed; `every` rows call for a trim.
    pub(crate) fn add(&self, user: u64, every: u32) -> TrimDue {
        let stripe = (user.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % INSERT_STRIPES;
        let mut map = lock(&self.stripes[stripe]);
        let mut due = TrimDue::default();
        if !map.contains_key(&user) && map.len() >= INSERTS_PER_STRIPE {
            if let Some(&victim) = map.keys().next() {
                map.remove(&victim);
                due.evicted = Some(victim);
            }
        }
        let count = map.entry(user).or_insert(0);
        *count += 1;
        if *count >= every {
            map.remove(&user);
            due.user = true;
        }
        due
    }

    /// Users tracked now (for tests).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.stripes.iter().map(|s| lock(s).len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_shared_and_bounded() {
        let inserts = HomeInserts::new();
        assert_eq!(inserts.add(7, 3), TrimDue::default());
        assert_eq!(inserts.add(7, 3), TrimDue::default());
        assert!(inserts.add(7, 3).user);
        assert_eq!(inserts.tracked(), 0);
        let mut evicted = 0;
        for user in 0..(INSERT_STRIPES * INSERTS_PER_STRIPE * 2) as u64 {
            let due = inserts.add(user, 1000);
            assert!(!due.user);
            evicted += usize::from(due.evicted.is_some());
        }
        assert!(inserts.tracked() <= INSERT_STRIPES * INSERTS_PER_STRIPE);
        assert_eq!(
            evicted + inserts.tracked(),
            INSERT_STRIPES * INSERTS_PER_STRIPE * 2
        );
    }

    #[test]
    fn a_tweets_jobs_go_to_one_worker_and_tweets_spread() {
        let ids: Vec<u64> = (0..64u64).map(|ms| (ms + 1000) << 22).collect();
        let mut used = std::collections::HashSet::new();
        for &id in &ids {
            assert_eq!(worker_of(id, 4), worker_of(id, 4));
            used.insert(worker_of(id, 4));
        }
        assert_eq!(used.len(), 4);
        assert_eq!(worker_of(12345, 1), 0);
    }
}
