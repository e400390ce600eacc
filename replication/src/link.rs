//! Frames over a QUIC stream: buffered reading until a whole frame decodes, and writing.

use bytes::BytesMut;

use crate::error::{Error, Result};
use crate::frame::{self, Frame};

/// The receiving half of a stream, with the bytes read but not yet decoded.
pub struct FrameReader {
    recv: quinn::RecvStream,
    buf: BytesMut,
}

impl FrameReader {
    /// Wraps a stream.
    pub fn new(recv: quinn::RecvStream) -> Self {
        FrameReader {
            recv,
            buf: BytesMut::with_capacity(64 << 10),
        }
    }

    /// The next frame; an error if the stream ends first or the bytes are invalid.
    pub async fn next(&mut self) -> Result<Frame> {
        loop {
            if let Some(frame) = frame::decode_buf(&mut self.buf)? {
                return Ok(frame);
            }
            match self.recv.read_chunk(1 << 20, true).await? {
                Some(chunk) => self.buf.extend_from_slice(&chunk.bytes),
                None => {
                    return Err(Error::Connection(if self.buf.is_empty() {
                        "stream closed".into()
                    } else {
                        "stream closed inside a frame".into()
                    }))
                }
            }
        }
    }
}

/// Sends one frame.
pub async fn send(stream: &mut quinn::SendStream, frame: &Frame) -> Result<()> {
    stream.write_all(&frame.to_bytes()).await?;
    Ok(())
}

/// Turns an error frame into an error; any other frame is returned.
pub fn refused(frame: Frame) -> Result<Frame> {
    match frame {
        Frame::Error { code, message } => Err(Error::Refused { code, message }),
        other => Ok(other),
    }
}
