//! Test-only harnesses for Chirp, never shipped (`publish = false`, a dev-dependency only).
//!
//! [`node`] starts the real `chirp` binary (found by [`bin::chirp`], never built by a test
//! and never stale) on a temp data dir and free ports and speaks HTTP to it; [`cluster`] adds
//! what replication tests need (a cluster CA, node certificates, status and digest polling);
//! [`etcd`] starts a real etcd on loopback for the control-plane tests.
//!
//! [`powercut`] is a FUSE filesystem that simulates a power cut: everything not fsynced is
//! lost. Integration tests mount it, run the real `chirp` binary on it, cut the power and
//! check that every acknowledged write survived (`server/tests/power_loss.rs`).
//! It needs Linux with `/dev/fuse`, and root or the `fusermount3` binary (`scripts/setup-deps`
//! installs it); callers skip when [`powercut::PowerCutFs::mount`] fails.

pub mod bin;
pub mod cluster;
pub mod etcd;
pub mod net;
pub mod node;
pub mod powercut;

/// What can go wrong mounting or unmounting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The mount failed: no FUSE, no permission, a bad mountpoint.
    #[error("mounting the power-cut filesystem: {0}")]
    Mount(std::io::Error),
    /// The unmount failed.
    #[error("unmounting the power-cut filesystem: {0}")]
    Unmount(std::io::Error),
}
