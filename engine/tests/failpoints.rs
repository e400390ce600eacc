//! Failure injection on the engine's write, fsync, apply, checkpoint-swap and fan-out paths
//! (the `fail` crate). Built only with the `failpoints` feature, in a test binary of its own,
//! because failpoints are process-global: `cargo test -p chirp-engine --features failpoints
//! --test failpoints`.
