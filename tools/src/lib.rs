//! Chirp's operator tools. The binaries under `src/bin/` are thin: argument parsing and
//! wiring over the modules here. [`load`] is the load generator behind `chirp-load`: a
//! synthetic network bulk-imported into a data dir, and HTTP workloads driven against a node.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod error;
pub mod load;

pub use error::{Error, Result};
