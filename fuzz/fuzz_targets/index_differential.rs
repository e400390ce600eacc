//! cargo-fuzz target: differential check of `TagIndex` against a BTreeMap model, and of its
//! encoding with one byte flipped, which must error, never panic.
//!
//! Run with `cargo +nightly fuzz run index_differential` from `fuzz/`; the check is
//! `chirp_index::fuzz_check::differential`, which the default tests also replay over
//! `corpus/index_differential/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| chirp_index::fuzz_check::differential(data));
