//! The crate's single error type.

use std::io;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operating system refused a read, write, sync or rename.
    #[error("index I/O failed: {0}")]
    Io(#[from] io::Error),
    /// A segment file failed a structural or checksum check.
    #[error("index segment is corrupt: {0}")]
    Corrupt(String),
    /// A segment file is intact but written in a format this build cannot read.
    #[error("index segment has format version {found}, this build reads version {supported}")]
    UnsupportedVersion {
        /// The version stored in the file.
        found: u16,
        /// The only version this build understands.
        supported: u16,
    },
    /// The shard already uses every u32 document number.
    #[error("index is full: every u32 document number is in use")]
    Full,
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;
