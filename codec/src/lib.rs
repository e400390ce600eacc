//! Chirp's pure codecs: everything that turns untrusted bytes into values, with no storage
//! engine, no I/O and no async runtime, so it can be fuzzed and property-tested on its own.
//!
//! It owns the key schema ([`keys`]), the stored documents ([`doc`]), the oplog entry codec
//! ([`batch`]), the replication wire format ([`frame`]), the public API's JSON request bodies
//! ([`body`]) and the tweet text rules ([`text`]). `chirp-engine` and `chirp-replication`
//! re-export these modules under their old paths. [`fuzz_checks`] holds what each target of
//! `fuzz/` checks, so the fuzzers and the corpus replay of `cargo test`
//! (`tests/fuzz_corpus.rs`) run one copy.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod batch;
pub mod body;
pub mod doc;
pub mod error;
pub mod frame;
pub mod fuzz_checks;
pub mod keys;
pub mod text;

pub use error::{Error, Result};
