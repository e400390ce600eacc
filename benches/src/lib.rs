//! Fixtures for the criterion benchmarks in `benches/`.
