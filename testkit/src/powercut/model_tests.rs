//! The durability rules of [`Model`], without a mount.

use std::ffi::OsStr;

use super::model::{Model, SetAttr, ROOT};
use super::DirDurability;

const IDS: (u32, u32) = (0, 0);

fn name(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn new_file(m: &mut Model, parent: u64, file: &str, bytes: &[u8]) -> u64 {
    let ino = m
        .create(parent, name(file), 0o644, IDS)
        .expect("create")
        .ino;
    m.write(ino, 0, bytes).expect("write");
    m.release(ino);
    ino
}

#[test]
fn unsynced_data_is_lost_and_synced_data_survives() {
    let mut m = Model::new(DirDurability::Immediate, 0, 0);
    let a = new_file(&mut m, ROOT, "a", b"hello");
    m.fsync(a).expect("fsync");
    m.write(a, 5, b" world").expect("append");
    let b = new_file(&mut m, ROOT, "b", b"never synced");
    assert_eq!(m.contents("a").expect("a"), b"hello world");
    assert_eq!(m.contents("b").expect("b"), b"never synced");

    let d = m.durable();
    assert_eq!(d.contents("a").expect("a"), b"hello");
    // The name is durable at once in this mode; the data is not.
    assert_eq!(d.contents("b").expect("b"), b"");
    assert!(d.attr(b).is_ok());
}

#[test]
fn fsync_copies_overwrites_truncation_and_appends() {
    let mut m = Model::new(DirDurability::Immediate, 0, 0);
    let f = new_file(&mut m, ROOT, "f", b"0123456789");
    m.fsync(f).expect("fsync");
    m.write(f, 2, b"xy").expect("overwrite");
    m.setattr(
        f,
        &SetAttr {
            size: Some(6),
            ..SetAttr::default()
        },
    )
    .expect("truncate");
    m.write(f, 8, b"Z").expect("write past the end");
    assert_eq!(m.contents("f").expect("f"), b"01xy45\0\0Z");
    // Before the second fsync, the cut restores the first.
    assert_eq!(m.durable().contents("f").expect("f"), b"0123456789");
    m.fsync(f).expect("fsync");
    assert_eq!(m.durable().contents("f").expect("f"), b"01xy45\0\0Z");
    // An unsynced truncation to zero comes back as the synced bytes.
    m.setattr(
        f,
        &SetAttr {
            size: Some(0),
            ..SetAttr::default()
        },
    )
    .expect("truncate");
    assert_eq!(m.durable().contents("f").expect("f"), b"01xy45\0\0Z");
}

#[test]
fn rename_over_a_file_carries_only_the_renamed_files_synced_data() {
    let mut m = Model::new(DirDurability::Immediate, 0, 0);
    let old = new_file(&mut m, ROOT, "CURRENT", b"MANIFEST-1\n");
    m.fsync(old).expect("fsync");
    let good = new_file(&mut m, ROOT, "good.tmp", b"MANIFEST-2\n");
    m.fsync(good).expect("fsync");
    m.rename((ROOT, name("good.tmp")), (ROOT, name("CURRENT")), false)
        .expect("rename");
    assert_eq!(
        m.durable().contents("CURRENT").expect("CURRENT"),
        b"MANIFEST-2\n"
    );
    assert!(m.attr(old).is_err(), "the replaced inode is freed");

    // The classic bug: rename a file into place without fsyncing it first.
    new_file(&mut m, ROOT, "bad.tmp", b"MANIFEST-3\n");
    m.rename((ROOT, name("bad.tmp")), (ROOT, name("CURRENT")), false)
        .expect("rename");
    assert_eq!(m.contents("CURRENT").expect("live"), b"MANIFEST-3\n");
    assert_eq!(m.durable().contents("CURRENT").expect("cut"), b"");
    assert!(m.durable().resolve("bad.tmp").is_err());
}

#[test]
fn rename_errors_follow_posix() {
    let mut m = Model::new(DirDurability::Immediate, 0, 0);
    let dir = m.mkdir(ROOT, name("d"), 0o755, IDS).expect("mkdir").ino;
    let sub = m.mkdir(dir, name("sub"), 0o755, IDS).expect("mkdir").ino;
    new_file(&mut m, ROOT, "f", b"x");
    new_file(&mut m, sub, "g", b"y");
    let into_itself = m.rename((ROOT, name("d")), (sub, name("d2")), false);
    assert_eq!(into_itself, Err(libc::EINVAL));
    assert_eq!(
        m.rename((ROOT, name("f")), (ROOT, name("d")), false),
        Err(libc::EISDIR)
    );
    assert_eq!(
        m.rename((ROOT, name("d")), (ROOT, name("f")), false),
        Err(libc::ENOTDIR)
    );
    assert_eq!(
        m.rename((ROOT, name("f")), (sub, name("g")), true),
        Err(libc::EEXIST)
    );
    assert_eq!(
        m.rename((ROOT, name("nope")), (ROOT, name("x")), false),
        Err(libc::ENOENT)
    );
    assert_eq!(m.rmdir(dir, name("sub")), Err(libc::ENOTEMPTY));
    m.rename((sub, name("g")), (ROOT, name("g")), false)
        .expect("move up");
    m.rmdir(dir, name("sub")).expect("now empty");
    assert_eq!(m.unlink(ROOT, name("d")), Err(libc::EISDIR));
}

#[test]
fn an_unlinked_open_file_lives_until_released() {
    let mut m = Model::new(DirDurability::Immediate, 0, 0);
    let f = m.create(ROOT, name("wal"), 0o644, IDS).expect("create").ino;
    m.unlink(ROOT, name("wal")).expect("unlink");
    m.write(f, 0, b"still writable").expect("write");
    assert_eq!(m.read(f, 6, 100).expect("read"), b"writable");
    m.release(f);
    assert!(m.attr(f).is_err());
}

#[test]
fn hard_links_share_data_and_survive_either_name_removed() {
    let mut m = Model::new(DirDurability::Immediate, 0, 0);
    let f = new_file(&mut m, ROOT, "000012.sst", b"sst bytes");
    m.fsync(f).expect("fsync");
    let dir = m
        .mkdir(ROOT, name("checkpoint"), 0o755, IDS)
        .expect("mkdir")
        .ino;
    assert_eq!(m.link(f, dir, name("000012.sst")).expect("link").nlink, 2);
    m.unlink(ROOT, name("000012.sst")).expect("unlink");
    let d = m.durable();
    assert_eq!(
        d.contents("checkpoint/000012.sst").expect("link"),
        b"sst bytes"
    );
    assert_eq!(d.attr(f).expect("attr").nlink, 1);
}

#[test]
fn strict_mode_keeps_only_entries_of_fsynced_directories() {
    let mut m = Model::new(DirDurability::OnFsync, 0, 0);
    let db = m.mkdir(ROOT, name("db"), 0o755, IDS).expect("mkdir").ino;
    let f = new_file(&mut m, db, "000001.log", b"wal");
    m.fsync(f).expect("fsync file");
    // The file is synced, but neither `db` in the root nor the file in `db` is.
    assert!(m.durable().resolve("db").is_err());
    m.fsyncdir(ROOT).expect("fsync root");
    let d = m.durable();
    assert!(d.resolve("db").is_ok());
    assert!(d.resolve("db/000001.log").is_err());
    m.fsyncdir(db).expect("fsync db");
    assert_eq!(m.durable().contents("db/000001.log").expect("log"), b"wal");

    // A rename not followed by a directory fsync is undone by the cut...
    let tmp = new_file(&mut m, db, "CURRENT.tmp", b"MANIFEST-5\n");
    m.fsync(tmp).expect("fsync");
    m.fsyncdir(db).expect("fsync db");
    m.rename((db, name("CURRENT.tmp")), (db, name("CURRENT")), false)
        .expect("rename");
    let d = m.durable();
    assert!(d.resolve("db/CURRENT").is_err());
    assert_eq!(d.contents("db/CURRENT.tmp").expect("tmp"), b"MANIFEST-5\n");
    // ...and kept once the directory is synced.
    m.fsyncdir(db).expect("fsync db");
    let d = m.durable();
    assert_eq!(d.contents("db/CURRENT").expect("current"), b"MANIFEST-5\n");
    assert!(d.resolve("db/CURRENT.tmp").is_err());
}

#[test]
fn strict_mode_brings_back_an_unlinked_file_whose_removal_was_not_synced() {
    let mut m = Model::new(DirDurability::OnFsync, 0, 0);
    let f = new_file(&mut m, ROOT, "old.log", b"old");
    m.fsync(f).expect("fsync");
    m.fsyncdir(ROOT).expect("fsyncdir");
    m.unlink(ROOT, name("old.log")).expect("unlink");
    assert!(m.resolve("old.log").is_err());
    assert_eq!(m.durable().contents("old.log").expect("back"), b"old");
    m.fsyncdir(ROOT).expect("fsyncdir");
    assert!(m.durable().resolve("old.log").is_err());
    assert!(
        m.attr(f).is_err(),
        "collected once nothing can bring it back"
    );
}

#[test]
fn a_durable_copy_cut_again_is_unchanged() {
    let mut m = Model::new(DirDurability::Immediate, 0, 0);
    let dir = m
        .mkdir(ROOT, name("shards"), 0o755, IDS)
        .expect("mkdir")
        .ino;
    let f = new_file(&mut m, dir, "000", b"data");
    m.fsync(f).expect("fsync");
    let once = m.durable();
    let twice = once.durable();
    assert_eq!(twice.contents("shards/000").expect("file"), b"data");
    assert_eq!(twice.readdir(ROOT).expect("root").len(), 3);
}
