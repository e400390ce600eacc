//! cargo-fuzz target: arbitrary bytes as every stored document kind: decoding must never panic, and
//! what decodes re-encodes and decodes to an equal document.
//!
//! Run with `cargo +nightly fuzz run doc_decode` from `fuzz/`; the check is
//! `chirp_codec::fuzz_checks::doc_decode`, which the default tests also replay over
//! `corpus/doc_decode/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| chirp_codec::fuzz_checks::doc_decode(data));
