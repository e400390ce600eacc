//! cargo-fuzz target: the replication frame decoder on arbitrary bytes.
//!
//! Run with `cargo +nightly fuzz run frame_decode` from `fuzz/`. Decoding must never panic;
//! whatever decodes must re-encode to exactly the bytes it was decoded from.

#![no_main]

use chirp_replication::frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((f, used))) = frame::decode(data) {
        assert_eq!(f.to_bytes(), &data[..used]);
    }
});
