//! The shared test kit (`chirp-testkit`): the node launcher and HTTP helpers, and the
//! replication helpers as `common::cluster`.
#![allow(unused_imports)]

pub use chirp_testkit::cluster;
pub use chirp_testkit::node::*;
