//! The load generator: [`network`] draws a synthetic social network, [`generate`] bulk-imports
//! it into a data dir, [`run`] drives a running node over HTTP with a workload mix and
//! [`report`] prints what it measured.

pub mod client;
pub mod fanout;
pub mod generate;
pub mod network;
pub mod redis;
pub mod report;
pub mod run;
pub mod stats;
pub mod workload;
