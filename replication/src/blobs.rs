//! Image files travel with their shard. A media row is replicated in the oplog like any row,
//! but the file it names lives outside RocksDB (`DATA/media/`), so a copy fetches the files
//! the rows of a batch name before it applies the batch, and every file a shard's rows name
//! after it installs a checkpoint. Its acknowledgement of the batch therefore covers the
//! files: a copy that acknowledged an upload serves the image once promoted.
//!
//! A blob stream carries one `BlobGet` (the file's SHA-256) and the file back as `BlobData`
//! pieces of at most [`PIECE`] bytes, the last one marked, or an Error (NotFound).

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::frame::{ErrorCode, Frame};
use crate::link::{self, FrameReader};
use crate::Replication;

/// Largest piece of a file in one frame.
pub const PIECE: usize = 1 << 20;
/// How long fetching one file may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves a blob stream: sends the file with this digest, or NotFound.
pub(crate) async fn serve(
    repl: &Arc<Replication>,
    send: &mut quinn::SendStream,
    cluster: String,
    sha256: String,
) -> Result<()> {
    if cluster != repl.config.cluster {
        return Err(Error::Refused {
            code: ErrorCode::BadRequest,
            message: format!("this node is in cluster {:?}", repl.config.cluster),
        });
    }
    let node = Arc::clone(&repl.node);
    let sha = sha256.clone();
    let file = tokio::task::spawn_blocking(move || node.blob_file(&sha))
        .await
        .map_err(|e| Error::Connection(e.to_string()))?;
    let file = match file {
        Ok(f) => f,
        Err(chirp_engine::Error::NotFound(_) | chirp_engine::Error::Invalid { .. }) => {
            return Err(Error::Refused {
                code: ErrorCode::NotFound,
                message: format!("no image file {sha256} here"),
            })
        }
        Err(e) => return Err(e.into()),
    };
    let bytes = file.as_ref();
    let mut pieces = bytes.chunks(PIECE).peekable();
    if pieces.peek().is_none() {
        return link::send(
            send,
            &Frame::BlobData {
                data: Vec::new(),
                last: true,
            },
        )
        .await;
    }
    while let Some(piece) = pieces.next() {
        let last = pieces.peek().is_none();
        link::send(
            send,
            &Frame::BlobData {
                data: piece.to_vec(),
                last,
            },
        )
        .await?;
    }
    Ok(())
}

/// Fetches each file in `missing` over `conn` and stores it durably. A file the other side
/// does not have either is logged and skipped (its image answers 404 here, as it does there):
/// a damaged primary must not stop its shard's replication.
pub(crate) async fn fetch(
    repl: &Replication,
    conn: &quinn::Connection,
    missing: Vec<String>,
) -> Result<()> {
    for sha in missing {
        let bytes = tokio::time::timeout(FETCH_TIMEOUT, fetch_one(repl, conn, &sha))
            .await
            .map_err(|_| Error::Connection(format!("fetching image file {sha} timed out")))?;
        let bytes = match bytes {
            Ok(b) => b,
            Err(Error::Refused {
                code: ErrorCode::NotFound,
                message,
            }) => {
                tracing::error!(
                    sha,
                    message,
                    "the primary lacks an image file its rows name; the image will answer 404 here"
                );
                continue;
            }
            Err(e) => return Err(e),
        };
        let node = Arc::clone(&repl.node);
        tokio::task::spawn_blocking(move || node.receive_blob(&sha, &bytes))
            .await
            .map_err(|e| Error::Connection(e.to_string()))??;
    }
    Ok(())
}

async fn fetch_one(repl: &Replication, conn: &quinn::Connection, sha: &str) -> Result<Vec<u8>> {
    let (mut send, recv) = conn.open_bi().await?;
    let mut recv = FrameReader::new(recv);
    link::send(
        &mut send,
        &Frame::BlobGet {
            cluster: repl.config.cluster.clone(),
            sha256: sha.to_string(),
        },
    )
    .await?;
    let _ = send.finish();
    let mut out = Vec::new();
    loop {
        match link::refused(recv.next().await?)? {
            Frame::BlobData { data, last } => {
                out.extend_from_slice(&data);
                if last {
                    return Ok(out);
                }
            }
            other => return Err(Error::Protocol(format!("expected BlobData, got {other:?}"))),
        }
    }
}
