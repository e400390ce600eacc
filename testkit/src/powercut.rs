//! A FUSE filesystem that can lose power.
//!
//! A test that SIGKILLs a process keeps the kernel's page cache, so it passes even when the
//! program never fsyncs. [`PowerCutFs`] holds every file in memory and keeps, per file, the
//! bytes as written and the bytes as of the last `fsync`/`fdatasync` (the LazyFS model).
//! [`Mounted::cut`] is the power cut: it unmounts and returns the [`Durable`] state, which a
//! later [`Durable::mount`] serves as a fresh filesystem.
//!
//! What survives a cut:
//! - File data, including the file's length (writes, truncation, `fallocate` growth), only as
//!   of the file's last fsync. A file created and written but never fsynced comes back empty.
//! - Directory entries (create, mkdir, rename, link, unlink, rmdir) as [`DirDurability`]
//!   says. The default, [`DirDurability::Immediate`], makes each one durable at once and in
//!   order, like a filesystem with synchronous metadata: renaming an unsynced file over
//!   another still loses its data, but no program needs a directory fsync to pass. It is the
//!   model that a correct RocksDB and a correct Chirp pass.
//! - [`DirDurability::OnFsync`] is the strict POSIX reading: a directory's entries are durable
//!   only as of the last fsync of that directory, so a file renamed into place (or a directory
//!   created) without fsyncing its parent directory is gone after the cut.
//! - Attributes (mode, owner, times) follow their inode; nothing depends on them.
//!
//! Not modelled: torn or reordered writes within the unsynced data (all of it is lost),
//! `sync_file_range` (not a durability guarantee, so correctly ignored), extended
//! attributes, symlinks, special files. File locks are left to the kernel, which handles
//! `fcntl` locks locally when the filesystem does not claim `FUSE_POSIX_LOCKS`; RocksDB's
//! `LOCK` file works as on a local disk.

mod fuse;
mod model;
#[cfg(test)]
mod model_tests;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use fuser::{BackgroundSession, Config, MountOption};

use crate::Error;
use model::Model;

/// When directory entries become durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DirDurability {
    /// Every namespace operation is durable as soon as it returns.
    #[default]
    Immediate,
    /// A directory's entries are durable only as of its last fsync (strict POSIX).
    OnFsync,
}

/// The power-loss filesystem; see the module documentation.
#[derive(Debug)]
pub struct PowerCutFs;

impl PowerCutFs {
    /// Mounts an empty filesystem at `mountpoint` (an existing, empty directory) with
    /// [`DirDurability::Immediate`].
    pub fn mount(mountpoint: &Path) -> Result<Mounted, Error> {
        Self::mount_with(mountpoint, DirDurability::Immediate)
    }

    /// Mounts an empty filesystem with the given directory durability.
    pub fn mount_with(mountpoint: &Path, dirs: DirDurability) -> Result<Mounted, Error> {
        // SAFETY: getuid and getgid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        Mounted::start(mountpoint, Model::new(dirs, uid, gid))
    }
}

/// Why FUSE cannot be used here, or `None` if a mount is worth trying. Tests print the
/// reason and skip.
pub fn unavailable() -> Option<String> {
    if !Path::new("/dev/fuse").exists() {
        return Some("no /dev/fuse (FUSE is not available in this kernel or container)".into());
    }
    None
}

/// A mounted [`PowerCutFs`]. Dropping it unmounts (keeping nothing).
#[derive(Debug)]
pub struct Mounted {
    mountpoint: PathBuf,
    model: Arc<Mutex<Model>>,
    session: Option<BackgroundSession>,
}

impl Mounted {
    fn start(mountpoint: &Path, model: Model) -> Result<Mounted, Error> {
        let mountpoint = mountpoint.canonicalize().map_err(Error::Mount)?;
        let model = Arc::new(Mutex::new(model));
        let handler = fuse::Handler::new(Arc::clone(&model));
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("chirp-powercut".into()),
            MountOption::NoAtime,
        ];
        let session = fuser::spawn_mount(handler, &mountpoint, &config).map_err(Error::Mount)?;
        Ok(Mounted {
            mountpoint,
            model,
            session: Some(session),
        })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// How many fsync and fsyncdir calls it has served.
    pub fn fsyncs(&self) -> u64 {
        lock(&self.model).fsyncs
    }

    /// Cuts the power: takes the durable state at this instant, fails every later operation
    /// with `EIO` (a process still running sees a dead disk), and unmounts. Processes using
    /// the mount should be killed first, or the unmount falls back to a lazy detach.
    pub fn cut(mut self) -> Result<Durable, Error> {
        let durable = {
            let mut model = lock(&self.model);
            let durable = model.durable();
            *model = Model::dead(model.dir_durability());
            durable
        };
        self.unmount()?;
        Ok(Durable { model: durable })
    }

    fn unmount(&mut self) -> Result<(), Error> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let path = CString::new(self.mountpoint.as_os_str().as_bytes())
            .map_err(|e| Error::Unmount(std::io::Error::other(e)))?;
        // Just after a SIGKILL the kernel may still be closing the dead process's files.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
            if unsafe { libc::umount2(path.as_ptr(), 0) } == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EBUSY) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                // Not root: fuser goes through `fusermount3 -u`.
                Some(libc::EPERM) => return session.umount_and_join().map_err(Error::Unmount),
                Some(libc::EBUSY) => {
                    // SAFETY: as above.
                    if unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) } != 0 {
                        return Err(Error::Unmount(std::io::Error::last_os_error()));
                    }
                    break;
                }
                _ => return Err(Error::Unmount(err)),
            }
        }
        // The session thread ends when the kernel closes the connection; after a lazy detach
        // that waits for the last user, so do not wait forever.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !session.guard.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if session.guard.is_finished() {
            session.join().map_err(Error::Unmount)?;
        }
        Ok(())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // Best effort: an error here has nowhere to go, and a stale mount is cleared by
        // fuser's own unmount-on-drop.
        let _ = self.unmount();
    }
}

/// What survived a [`Mounted::cut`].
#[derive(Debug)]
pub struct Durable {
    model: Model,
}

impl Durable {
    /// Mounts a fresh filesystem holding a copy of this state.
    pub fn mount(&self, mountpoint: &Path) -> Result<Mounted, Error> {
        Mounted::start(mountpoint, self.model.durable())
    }

    /// A file's bytes, if `path` (relative to the root) names a file.
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.model.contents(path).ok()
    }

    /// Whether `path` (relative to the root) exists.
    pub fn exists(&self, path: &str) -> bool {
        self.model.resolve(path).is_ok()
    }
}

fn lock(model: &Mutex<Model>) -> std::sync::MutexGuard<'_, Model> {
    // A panic in one operation leaves the model usable: each operation mutates in place.
    model.lock().unwrap_or_else(PoisonError::into_inner)
}
