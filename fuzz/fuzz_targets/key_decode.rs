//! cargo-fuzz target: every key decoder of the key schema: what decodes re-encodes to the same key,
//! and keys of one layout sort like what they decode to.
//!
//! Run with `cargo +nightly fuzz run key_decode` from `fuzz/`; the check is
//! `chirp_codec::fuzz_checks::key_decode`, which the default tests also replay over
//! `corpus/key_decode/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| chirp_codec::fuzz_checks::key_decode(data));
