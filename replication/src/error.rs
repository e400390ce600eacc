//! The replication crate's one error type.

/// What replication can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bytes from a peer that are not a valid frame, or a frame out of turn.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The peer refused a request with an error frame.
    #[error("peer refused ({code:?}): {message}")]
    Refused {
        /// The peer's error code.
        code: crate::frame::ErrorCode,
        /// The peer's explanation.
        message: String,
    },
    /// A copy following a shard met a primary whose epoch is below the highest epoch of the
    /// shard it has seen in the map: that primary was replaced, and nothing it sends is taken.
    #[error("the primary is at epoch {theirs}, below epoch {seen} of the map")]
    StaleEpoch {
        /// The primary's epoch.
        theirs: u64,
        /// The highest epoch of the shard seen in the map.
        seen: u64,
    },
    /// Applying shipped entries failed (a storage error, a gap, an apply that panicked). The
    /// copy cannot go on past that entry, so the shard stops following instead of retrying.
    #[error("applying entries failed: {0}")]
    Apply(String),
    /// The storage engine failed.
    #[error(transparent)]
    Engine(#[from] chirp_engine::Error),
    /// TLS set-up failed (bad certificate or key files).
    #[error("tls: {0}")]
    Tls(String),
    /// The QUIC connection failed.
    #[error("connection: {0}")]
    Connection(String),
    /// A file operation failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// This node stopped leading the shard (replaced by the map, or promoted again at
    /// another epoch) while a write made at `epoch` waited: the write is not acknowledged,
    /// whatever the shard's sync set says now (a new primary may lack it).
    #[error(
        "shard {shard} changed hands while LSN {lsn} (epoch {epoch}) waited; not acknowledged"
    )]
    Replaced {
        /// The shard.
        shard: usize,
        /// The LSN waited for.
        lsn: u64,
        /// The epoch it was written at.
        epoch: u64,
    },
    /// A sync-mode write was not confirmed by any replica in time.
    #[error("no replica confirmed LSN {lsn} of shard {shard} within {waited_ms} ms")]
    SyncTimeout {
        /// The shard.
        shard: usize,
        /// The LSN waited for.
        lsn: u64,
        /// How long we waited.
        waited_ms: u64,
    },
}

impl From<chirp_codec::Error> for Error {
    fn from(e: chirp_codec::Error) -> Self {
        match e {
            chirp_codec::Error::Protocol(why) => Error::Protocol(why),
            other => Error::Engine(other.into()),
        }
    }
}

impl From<quinn::ConnectionError> for Error {
    fn from(e: quinn::ConnectionError) -> Self {
        Error::Connection(e.to_string())
    }
}

impl From<quinn::ConnectError> for Error {
    fn from(e: quinn::ConnectError) -> Self {
        Error::Connection(e.to_string())
    }
}

impl From<quinn::WriteError> for Error {
    fn from(e: quinn::WriteError) -> Self {
        Error::Connection(e.to_string())
    }
}

impl From<quinn::ReadError> for Error {
    fn from(e: quinn::ReadError) -> Self {
        Error::Connection(e.to_string())
    }
}

impl From<rcgen::Error> for Error {
    fn from(e: rcgen::Error) -> Self {
        Error::Tls(e.to_string())
    }
}

impl From<rustls::Error> for Error {
    fn from(e: rustls::Error) -> Self {
        Error::Tls(e.to_string())
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
