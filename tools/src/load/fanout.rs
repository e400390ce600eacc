//! `chirp-load fanout`: how many home rows per second a node writes and syncs for a burst of
//! posts by one author below the celebrity threshold, read from the node's own counter
//! (`fanout.home_rows` of the admin `/status`), from the first post sent to the last job done.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::load::client::Conn;
use crate::load::generate::Sidecar;
use crate::load::run::log_in;

/// What to run.
#[derive(Debug, Clone)]
pub struct FanoutConfig {
    /// The node's public address.
    pub addr: SocketAddr,
    /// Its admin address.
    pub admin: SocketAddr,
    /// The admin token.
    pub admin_token: String,
    /// The generated network.
    pub sidecar: Sidecar,
    /// The probe class whose author posts (`large`: the most followed below the threshold).
    pub class: String,
    /// Posts in the burst.
    pub posts: usize,
    /// Connections posting at once.
    pub connections: usize,
}

/// What a burst measured.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutReport {
    /// The author's followers when the network was drawn.
    pub author_followers: u64,
    /// Posts acknowledged.
    pub posts: usize,
    /// Home rows the node wrote and synced meanwhile.
    pub rows: u64,
    /// From the first post sent to the last job done.
    pub secs: f64,
    /// Rows per second.
    pub rows_per_sec: f64,
    /// From the first post sent to the last post acknowledged.
    pub posting_secs: f64,
}

async fn status(conn: &mut Conn, token: &str) -> Result<(u64, u64)> {
    let r = conn.send(Method::GET, "/status", Some(token), None).await?;
    if !r.ok() {
        return Err(Error::Status {
            what: "GET /status".into(),
            status: r.status,
            body: String::from_utf8_lossy(&r.body[..r.body.len().min(200)]).into(),
        });
    }
    let v: serde_json::Value = serde_json::from_slice(&r.body)?;
    let n = |k: &str| v["fanout"][k].as_u64().unwrap_or(0);
    Ok((n("home_rows"), n("pending_jobs")))
}

/// Posts the burst and waits (up to 5 minutes) until its fan-out is done.
pub async fn run(cfg: &FanoutConfig) -> Result<FanoutReport> {
    let probe = cfg
        .sidecar
        .probes
        .iter()
        .find(|p| p.class == cfg.class)
        .ok_or_else(|| Error::Invalid(format!("the network has no {:?} author", cfg.class)))?
        .clone();
    let mut admin = Conn::connect(cfg.admin).await?;
    let mut conn = Conn::connect(cfg.addr).await?;
    let author = log_in(&mut conn, &cfg.sidecar.password, probe.author).await?;
    // Whatever an earlier run left queued must not count.
    while status(&mut admin, &cfg.admin_token).await?.1 > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (rows_before, _) = status(&mut admin, &cfg.admin_token).await?;
    let started = Instant::now();
    let per = cfg.posts.div_ceil(cfg.connections.max(1));
    let mut tasks = Vec::new();
    for j in 0..cfg.connections.max(1) {
        let (addr, token) = (cfg.addr, author.token.clone());
        let n = per.min(cfg.posts.saturating_sub(j * per));
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(addr).await?;
            let mut ok = 0;
            for k in 0..n {
                let body = serde_json::json!({"text": format!("fan-out burst {j}.{k}")});
                let r = conn
                    .send(
                        Method::POST,
                        "/tweet",
                        Some(&token),
                        Some(Bytes::from(body.to_string())),
                    )
                    .await?;
                ok += usize::from(r.ok());
            }
            Ok::<_, Error>(ok)
        }));
    }
    let mut posts = 0;
    for t in tasks {
        posts += t.await.map_err(|e| Error::Http(e.to_string()))??;
    }
    let posting_secs = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(300);
    let rows_after = loop {
        let (rows, pending) = status(&mut admin, &cfg.admin_token).await?;
        if pending == 0 {
            break rows;
        }
        if Instant::now() > deadline {
            return Err(Error::Http("fan-out not done within 5 minutes".into()));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let secs = started.elapsed().as_secs_f64();
    let rows = rows_after.saturating_sub(rows_before);
    Ok(FanoutReport {
        author_followers: probe.author_followers,
        posts,
        rows,
        secs,
        rows_per_sec: rows as f64 / secs.max(1e-9),
        posting_secs,
    })
}
