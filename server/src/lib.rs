//! Chirp's HTTP frontend: a hyper 1.x server that parses requests into endpoints, calls the
//! engine's domain layer and renders JSON or problem details; serves the embedded web client;
//! the admin listener beside it; metrics, the OpenAPI document and the configuration. The
//! `chirp` binary wires it up.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod admin;
pub mod admin_token;
pub mod api;
pub mod cluster;
pub mod config;
pub mod forward;
pub mod http;
pub mod limits;
pub mod mastodon;
pub mod media;
pub mod metrics;
pub mod openapi;
pub mod replication;
pub mod routes;
pub mod views;
pub mod web;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use admin::AdminApp;
pub use config::Config;
pub use routes::App;

/// How long open connections get to finish after shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the API on `listener` until `shutdown` resolves, then stops accepting, lets open
/// requests finish (up to a timeout) and returns. At most `max_connections` are served at once.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
) {
    serve(listener, max_connections, shutdown, move |req| {
        routes::handle(Arc::clone(&app), req)
    })
    .await
}

/// Connections the admin listener serves at once: it is for a few operators and scrapers.
const ADMIN_CONNECTIONS: usize = 16;

/// Serves the admin endpoints on `listener` until `shutdown` resolves.
pub async fn run_admin(
    listener: TcpListener,
    app: Arc<AdminApp>,
    shutdown: impl Future<Output = ()>,
) {
    serve(listener, ADMIN_CONNECTIONS, shutdown, move |req| {
        admin::handle(Arc::clone(&app), req)
    })
    .await
}

/// The accept loop both listeners share: bounded connections, graceful drain.
async fn serve<H, F>(
    listener: TcpListener,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
    handler: H,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<http::Body>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let service = service_fn(move |mut req: Request<Incoming>| {
            // Admin endpoints of the public API answer only loopback peers.
            req.extensions_mut().insert(routes::Peer(peer));
            let response = handler(req);
            async move { Ok::<_, std::convert::Infallible>(response.await) }
        });
        let conn = http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    tracing::info!("shutting down: draining open connections");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish in time");
    }
}
