//! cargo-fuzz target: the public API's JSON request bodies (the first byte picks the type) and the
//! tweet text rule and hashtag extraction.
//!
//! Run with `cargo +nightly fuzz run request_body` from `fuzz/`; the check is
//! `chirp_codec::fuzz_checks::request_body`, which the default tests also replay over
//! `corpus/request_body/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| chirp_codec::fuzz_checks::request_body(data));
