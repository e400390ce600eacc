//! Chirp's operator tools. The binaries under `src/bin/` are thin: argument parsing and
//! wiring over the modules here. [`ctl`] is `chirpctl`, the admin CLI: it talks to a running
//! node's admin listener, or opens the data dir of a stopped node directly. [`load`] is the
//! load generator behind `chirp-load`: a synthetic network bulk-imported into a data dir, and
//! HTTP workloads driven against a node. [`repl`] holds the replication commands of `chirpctl`,
//! [`cluster`] its cluster commands (the map in etcd: create, status, node add).

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod cluster;
pub mod ctl;
pub mod error;
pub mod load;
pub mod repl;

pub use error::{Error, Result};
