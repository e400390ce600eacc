//! Caps on heavy work running at once. An image decode may hold hundreds of MiB and a core;
//! an argon2 password hash holds 19 MiB and a core. Both are called from the server's blocking
//! pool, which would otherwise run hundreds side by side.
//!
//! Decodes take a [`Slots`] slot on the caller's thread. Password hashes run on a [`HashPool`]
//! of their own threads instead: the allocator keeps a freed 19 MiB block in the arena of the
//! thread that used it, so hashing on hundreds of pool threads (even a few at a time) would
//! leave hundreds of such blocks resident. A fixed pool keeps at most one per pool thread.

use std::time::{Duration, Instant};

use crossbeam::channel::{bounded, Receiver, Sender, TrySendError};

use crate::error::{Error, Result};

/// A fixed number of slots for one kind of work.
pub(crate) struct Slots {
    tx: Sender<()>,
    rx: Receiver<()>,
}

/// A held slot, given back on drop.
pub(crate) struct Slot<'a>(&'a Slots);

impl Slots {
    /// `n` slots (at least one).
    pub(crate) fn new(n: usize) -> Slots {
        let (tx, rx) = bounded(n.max(1));
        for _ in 0..n.max(1) {
            let _ = tx.send(());
        }
        Slots { tx, rx }
    }

    /// Waits as long as it takes for a slot.
    pub(crate) fn acquire(&self) -> Slot<'_> {
        // Both ends live in `self`, so the channel cannot be disconnected here.
        let _ = self.rx.recv();
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let _ = self.0.tx.send(());
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Threads that run password hashes, with a bounded queue in front of them.
pub(crate) struct HashPool {
    queue: Sender<(Instant, Job)>,
    wait: Duration,
}

impl HashPool {
    /// `threads` hashing threads; a job not started within `wait` of being queued is refused.
    pub(crate) fn new(threads: usize, wait: Duration) -> std::io::Result<HashPool> {
        let threads = threads.max(1);
        // Room for what the threads can start within `wait` at a few tens of ms a hash; past
        // that a job would be refused anyway, so it is refused at once.
        let (tx, rx) = bounded::<(Instant, Job)>(threads * 64);
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("chirp-hash-{i}"))
                .spawn(move || {
                    for (queued, job) in rx.iter() {
                        // A job that waited too long is dropped unrun: its caller's reply
                        // channel closes and it reports the node busy.
                        if queued.elapsed() <= wait {
                            job();
                        }
                    }
                })?;
        }
        Ok(HashPool { queue: tx, wait })
    }

    /// Runs `f` on a hashing thread and returns its result; [`Error::Unavailable`] when the
    /// pool is too busy to start it within its wait.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let busy = || Error::Unavailable("too many password checks at once; retry shortly".into());
        let (reply_tx, reply_rx) = bounded(1);
        let job: Job = Box::new(move || {
            let _ = reply_tx.send(f());
        });
        match self.queue.try_send((Instant::now(), job)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => return Err(busy()),
        }
        // Generous: a started hash takes tens of milliseconds.
        reply_rx.recv_timeout(self.wait * 4).map_err(|_| busy())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn the_pool_runs_jobs_and_refuses_what_waited_too_long() {
        let pool = Arc::new(HashPool::new(1, Duration::from_millis(50)).expect("pool"));
        assert_eq!(pool.run(|| 7).expect("run"), 7);
        let running = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<_> = (0..4)
            .map(|_| {
                let (pool, running) = (Arc::clone(&pool), Arc::clone(&running));
                std::thread::spawn(move || {
                    pool.run(move || {
                        running.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(100));
                    })
                })
            })
            .collect();
        let results: Vec<_> = jobs.into_iter().map(|j| j.join().expect("join")).collect();
        let refused = results.iter().filter(|r| r.is_err()).count();
        assert!(
            refused >= 1,
            "one thread cannot start four 100 ms jobs within 50 ms each"
        );
        assert_eq!(running.load(Ordering::SeqCst), 4 - refused);
    }
}
