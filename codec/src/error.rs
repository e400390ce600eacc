//! The codec crate's one error type.

/// Why bytes do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A stored value (document, oplog entry) does not decode.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// Bytes from a peer that can never be a valid replication frame.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A request body that is not JSON.
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    /// A request body field that is missing, unknown or of the wrong type.
    #[error("{field}: {message}")]
    InvalidField {
        /// The offending field, as a JSON path.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// The codec crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
