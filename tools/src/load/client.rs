//! A keep-alive HTTP/1.1 connection to a node (hyper's client connection, one request in
//! flight at a time), so every request of a worker reuses one TCP connection.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;

use crate::error::{Error, Result};

/// One open connection.
pub struct Conn {
    addr: SocketAddr,
    sender: SendRequest<Full<Bytes>>,
}

/// A response: status and body.
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// The whole body.
    pub body: Bytes,
}

impl Reply {
    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl Conn {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Result<Conn> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| Error::Http(format!("connect {addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Error::Http(e.to_string()))?;
        tokio::spawn(async move {
            // Ends when the sender is dropped or the server closes; nothing to report.
            let _ = conn.await;
        });
        Ok(Conn { addr, sender })
    }

    /// Sends one request and reads the whole response. After an error the connection is
    /// replaced by a fresh one, so the caller can go on.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Bytes>,
    ) -> Result<Reply> {
        let result = self.try_send(method, path, token, body).await;
        if result.is_err() {
            *self = Conn::connect(self.addr).await?;
        }
        result
    }

    async fn try_send(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Bytes>,
    ) -> Result<Reply> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.addr.to_string());
        if let Some(t) = token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| Error::Http(e.to_string()))?;
        self.sender
            .ready()
            .await
            .map_err(|e| Error::Http(e.to_string()))?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| Error::Http(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| Error::Http(e.to_string()))?
            .to_bytes();
        Ok(Reply { status, body })
    }
}
