//! cargo-fuzz target: the replication frame decoder on arbitrary bytes: decoding must never
//! panic, and whatever decodes must re-encode to exactly the bytes it was decoded from.
//!
//! Run with `cargo +nightly fuzz run frame_decode` from `fuzz/`; the check is
//! `chirp_codec::fuzz_checks::frame_decode`, which the default tests also replay over
//! `corpus/frame_decode/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| chirp_codec::fuzz_checks::frame_decode(data));
