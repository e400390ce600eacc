//! cargo-fuzz target: the oplog entry decoder: never panics; what decodes re-encodes to the same
//! bytes.
//!
//! Run with `cargo +nightly fuzz run batch_decode` from `fuzz/`; the check is
//! `chirp_codec::fuzz_checks::batch_decode`, which the default tests also replay over
//! `corpus/batch_decode/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| chirp_codec::fuzz_checks::batch_decode(data));
