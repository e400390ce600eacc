//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the checks the fuzz
//! targets run, so what fuzzing found and covered stays covered by `cargo test` on stable.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use chirp_codec::fuzz_checks;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut replayed = 0;
    for entry in entries {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            panic!("{target} fails on {}", path.display());
        }
        replayed += 1;
    }
    assert!(replayed > 0, "{} is empty", dir.display());
}

#[test]
fn frame_decode() {
    replay("frame_decode", fuzz_checks::frame_decode);
}

#[test]
fn batch_decode() {
    replay("batch_decode", fuzz_checks::batch_decode);
}

#[test]
fn doc_decode() {
    replay("doc_decode", fuzz_checks::doc_decode);
}

#[test]
fn key_decode() {
    replay("key_decode", fuzz_checks::key_decode);
}

#[test]
fn request_body() {
    replay("request_body", fuzz_checks::request_body);
}

#[test]
fn index_differential() {
    replay("index_differential", chirp_index::fuzz_check::differential);
}
