//! The engine's one error type.

/// What a domain operation can fail with. The HTTP layer maps each variant to a status code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is invalid; `field` names it.
    #[error("{field}: {message}")]
    Invalid {
        /// The offending field.
        field: &'static str,
        /// Why it is invalid.
        message: String,
    },
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique field is already taken.
    #[error("{field}: {message}")]
    Conflict {
        /// The field whose value is taken.
        field: &'static str,
        /// What is taken.
        message: String,
    },
    /// No credentials, or bad ones.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The caller may not do this (acting as someone else).
    #[error("{0}")]
    Forbidden(&'static str),
    /// An upload is larger than the configured limit (bytes).
    #[error("the upload is larger than the {0}-byte limit")]
    TooLarge(usize),
    /// An upload's declared type is not one this node accepts.
    #[error("{0}")]
    UnsupportedType(String),
    /// This node is a replica (or a deposed primary) and takes no writes; the string names
    /// the primary when known.
    #[error("this node does not take writes; send them to the primary{}", if .0.is_empty() { String::new() } else { format!(" at {}", .0) })]
    NotPrimary(String),
    /// The shard (number given) is held by another node; the request belongs there.
    #[error("shard {0} is not held by this node")]
    NotHere(usize),
    /// The thing asked for is briefly out of service (e.g. a shard while a checkpoint is
    /// swapped in); the caller may retry shortly.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    /// A read inside [`crate::cache_only`] needed the disk; redo it where blocking is fine.
    #[error("the read needs the disk")]
    WouldBlock,
    /// The storage layer failed.
    #[error("storage error: {0}")]
    Storage(String),
    /// A stored value does not decode.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// A shard is locked by another process: a node is running on the data dir.
    #[error("{0} is in use by another process (is a node running on this data dir?)")]
    Locked(String),
    /// A file-system operation failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// An [`Error::Invalid`] for `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<rocksdb::Error> for Error {
    fn from(e: rocksdb::Error) -> Self {
        if e.kind() == rocksdb::ErrorKind::Incomplete {
            return Error::WouldBlock;
        }
        Error::Storage(e.into_string())
    }
}

impl From<chirp_codec::Error> for Error {
    fn from(e: chirp_codec::Error) -> Self {
        match e {
            chirp_codec::Error::Corrupt(why) => Error::Corrupt(why),
            // The engine decodes no frames; a protocol error here is still bad bytes.
            other => Error::Corrupt(other.to_string()),
        }
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
