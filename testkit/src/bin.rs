//! Finding the `chirp` binary of this build. Cargo names a binary to integration tests only
//! inside its own package (`CARGO_BIN_EXE_chirp` exists for `server/` tests alone), so every
//! test finds it the same way: next to the test executable, in `target/<profile>/`, where
//! `cargo test --workspace` (or any build of `chirp-server`) links it before tests run. No test
//! builds it, and none runs one older than the sources it is built from: that is refused with
//! the command to run.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::SystemTime;

/// The workspace root (this crate's parent directory).
fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
}

/// What the `chirp` binary is built from: its crates' sources and manifests, the embedded
/// web client and the lock file.
const CHIRP_SOURCES: &[&str] = &[
    "Cargo.lock",
    "engine/src",
    "engine/Cargo.toml",
    "index/src",
    "index/Cargo.toml",
    "codec/src",
    "codec/Cargo.toml",
    "replication/src",
    "replication/Cargo.toml",
    "cluster/src",
    "cluster/Cargo.toml",
    "server/src",
    "server/build.rs",
    "server/Cargo.toml",
    "web/dist",
];

/// The `chirp` binary to test: `CHIRP_BIN` if set, else `target/<profile>/chirp` beside the
/// running test. Panics, naming the fix, when it is missing or older than its sources.
pub fn chirp() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("CHIRP_BIN") {
            return PathBuf::from(bin);
        }
        let exe = std::env::current_exe().expect("the test executable's path");
        // target/<profile>/deps/<test>-<hash>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>");
        let bin = profile_dir.join(format!("chirp{}", std::env::consts::EXE_SUFFIX));
        let built = std::fs::metadata(&bin)
            .and_then(|m| m.modified())
            .unwrap_or_else(|_| panic!("{} is missing: {}", bin.display(), HOW));
        if let Some(newer) = newer_source(built) {
            panic!(
                "{} is older than {}: {}",
                bin.display(),
                newer.display(),
                HOW
            );
        }
        bin
    })
}

const HOW: &str = "run the tests with `cargo test --workspace` (which builds it), or \
                   `cargo build -p chirp-server` first, or set CHIRP_BIN";

/// A source file modified after `built`, if any.
fn newer_source(built: SystemTime) -> Option<PathBuf> {
    let mut stack: Vec<PathBuf> = CHIRP_SOURCES.iter().map(|p| workspace().join(p)).collect();
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else if meta.modified().is_ok_and(|m| m > built) {
            return Some(path);
        }
    }
    None
}
