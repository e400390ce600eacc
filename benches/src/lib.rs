//! criterion benchmarks of Chirp's hot paths live in `benches/`; this library is empty so the
//! package has a target of its own.
