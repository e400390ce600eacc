//! The tools library's one error type.

/// What a tool operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The storage engine refused or failed.
    #[error(transparent)]
    Engine(#[from] chirp_engine::Error),
    /// A file could not be read or written.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A JSON file or body does not parse.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// An HTTP exchange failed below the status line (connect, send, read).
    #[error("http: {0}")]
    Http(String),
    /// The node answered with an unexpected status.
    #[error("{what}: HTTP {status}: {body}")]
    Status {
        /// What was asked.
        what: String,
        /// The status code.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The cluster's control plane refused or failed.
    #[error(transparent)]
    Cluster(#[from] chirp_cluster::Error),
    /// Arguments that cannot work together.
    #[error("{0}")]
    Invalid(String),
}

/// The tools' result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
