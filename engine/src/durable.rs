//! File-system steps that make a change survive a power cut: a new file's data and its name
//! are durable only once the file *and its directory* are fsynced (the power-loss test in
//! `server/tests/power_loss.rs` loses the whole store when one of these is skipped).

use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::Path;

use crate::error::Result;

/// Fsyncs a directory, making the entries created, renamed or removed in it durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Fsyncs the directory holding `path`.
pub(crate) fn sync_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => sync_dir(p),
        _ => sync_dir(Path::new(".")),
    }
}

/// Creates `dir` and its missing ancestors, fsyncing the parent of each: a new directory is
/// only durable once the entry naming it is.
pub(crate) fn create_dir_synced(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    create_dir_synced(parent)?;
    match fs::create_dir(dir) {
        Ok(()) => {}
        // A racing creator may not have fsynced the parent yet: do it here too.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e.into()),
    }
    sync_dir(parent)
}

/// Replaces `path` with `bytes` atomically and durably: a sibling temp file is written and
/// fsynced, renamed over `path`, and the directory fsynced. Readers see the old file or the
/// new one, never a part; one writer per path at a time.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    fs::write(&tmp, bytes)?;
    File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, path)?;
    sync_parent(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_the_file_and_leave_no_temp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested/deeper/file.json");
        create_dir_synced(path.parent().expect("parent")).expect("dirs");
        write_atomic(&path, b"one").expect("write");
        write_atomic(&path, b"two").expect("rewrite");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        let names: Vec<_> = fs::read_dir(path.parent().expect("parent"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("file.json")]);
    }
}
