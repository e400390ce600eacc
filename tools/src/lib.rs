//! Chirp's operator tools. The binaries under `src/bin/` are thin: argument parsing and
//! wiring over the modules here.
