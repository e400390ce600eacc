//! The power-cut filesystem through a real mount: what std::fs does on it, and what a cut
//! keeps. Skips (and passes) where FUSE is unavailable.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::io::AsRawFd;
use std::path::Path;

use chirp_testkit::powercut::{self, DirDurability, Mounted, PowerCutFs};

fn mount(dir: &Path, dirs: DirDurability) -> Option<Mounted> {
    if let Some(why) = powercut::unavailable() {
        eprintln!("skipping the power-cut mount test: {why}");
        return None;
    }
    fs::create_dir_all(dir).expect("mountpoint");
    match PowerCutFs::mount_with(dir, dirs) {
        Ok(m) => Some(m),
        Err(e) => {
            eprintln!("skipping the power-cut mount test: {e}");
            None
        }
    }
}

fn write(path: &Path, bytes: &[u8], sync: bool) {
    let mut f = File::create(path).expect("create");
    f.write_all(bytes).expect("write");
    if sync {
        f.sync_all().expect("fsync");
    }
}

#[test]
fn a_cut_keeps_fsynced_files_and_drops_the_rest() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("mnt");
    let Some(mounted) = mount(&dir, DirDurability::Immediate) else {
        return;
    };
    fs::create_dir_all(dir.join("db/sub")).expect("mkdir");
    write(&dir.join("db/synced"), b"durable", true);
    write(&dir.join("db/unsynced"), b"page cache only", false);
    // Temp file, fsync, rename over an existing file: the RocksDB CURRENT dance.
    write(&dir.join("db/CURRENT"), b"MANIFEST-1\n", true);
    write(&dir.join("db/CURRENT.tmp"), b"MANIFEST-2\n", true);
    fs::rename(dir.join("db/CURRENT.tmp"), dir.join("db/CURRENT")).expect("rename");
    // Appends after a sync are lost; the synced prefix stays.
    let mut wal = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("db/000003.log"))
        .expect("open wal");
    wal.write_all(b"rec1;").expect("append");
    wal.sync_data().expect("fdatasync");
    wal.write_all(b"rec2;").expect("append");
    // RocksDB's LOCK: an fcntl lock, handled by the kernel.
    let lock = File::create(dir.join("db/LOCK")).expect("lock file");
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as i16;
    fl.l_whence = libc::SEEK_SET as i16;
    // SAFETY: a valid fd and a valid flock struct.
    let rc = unsafe { libc::fcntl(lock.as_raw_fd(), libc::F_SETLK, &fl) };
    assert_eq!(rc, 0, "F_SETLK: {}", std::io::Error::last_os_error());
    // Reads and seeks see the live data, unsynced or not.
    let mut f = File::open(dir.join("db/unsynced")).expect("open");
    f.seek(SeekFrom::Start(5)).expect("seek");
    let mut s = String::new();
    f.read_to_string(&mut s).expect("read");
    assert_eq!(s, "cache only");
    assert!(mounted.fsyncs() >= 4);
    drop((wal, lock, f));

    let durable = mounted.cut().expect("cut");
    assert_eq!(durable.read("db/synced").as_deref(), Some(&b"durable"[..]));
    assert_eq!(durable.read("db/unsynced").as_deref(), Some(&b""[..]));
    assert_eq!(
        durable.read("db/CURRENT").as_deref(),
        Some(&b"MANIFEST-2\n"[..])
    );
    assert_eq!(
        durable.read("db/000003.log").as_deref(),
        Some(&b"rec1;"[..])
    );
    assert!(!durable.exists("db/CURRENT.tmp"));
    assert!(durable.exists("db/sub"));

    // Remounted, the same state through the kernel.
    let again = durable.mount(&dir).expect("remount");
    assert_eq!(fs::read(dir.join("db/synced")).expect("read"), b"durable");
    assert_eq!(fs::read(dir.join("db/000003.log")).expect("read"), b"rec1;");
    let mut names: Vec<String> = fs::read_dir(dir.join("db"))
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["000003.log", "CURRENT", "LOCK", "sub", "synced", "unsynced"]
    );
    drop(again);
    assert!(!dir.join("db").exists(), "dropping a mount unmounts it");
}

#[test]
fn strict_mode_needs_a_directory_fsync_through_the_kernel() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("mnt");
    let Some(mounted) = mount(&dir, DirDurability::OnFsync) else {
        return;
    };
    write(&dir.join("kept"), b"a", true);
    File::open(&dir)
        .expect("open dir")
        .sync_all()
        .expect("fsyncdir");
    write(&dir.join("lost"), b"b", true);
    let durable = mounted.cut().expect("cut");
    assert_eq!(durable.read("kept").as_deref(), Some(&b"a"[..]));
    assert!(
        !durable.exists("lost"),
        "its directory was never fsynced after it"
    );
}
