//! The Redis timeline peer: the home page as Twitter served it, from Redis lists, measured
//! beside Chirp's `GET /feed` in the same run.
//!
//! [`load`] opens a stopped node's data dir, reads every user's first home page through the
//! engine (the page `GET /feed` would serve, celebrities merged) and stores it in Redis:
//! `home:u{i}` a list of the page's tweet ids, newest first, and `tweet:{id}` each tweet's
//! JSON in the API's shape. [`run`] then reads pages closed-loop over the same number of
//! connections and the same sampled users as `chirp-load run`: `LRANGE home:u{i} 0 19`, then
//! one `MGET` of the 20 documents. With `pipeline` > 1 each connection sends that many pages'
//! commands at once (Redis's best case; an HTTP/1.1 client has one request in flight).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chirp_engine::{Node, NodeConfig, PageRequest, Tweet};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::load::generate::Sidecar;
use crate::load::network;
use crate::load::report::PhaseReport;
use crate::load::run::sample_users;
use crate::load::stats::Stats;

/// Commands sent before their replies are read while loading.
const LOAD_BATCH: usize = 512;

/// A Redis command in RESP.
fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// One RESP reply: an error, a scalar, or an array of bulk strings (`None`: nil).
#[derive(Debug)]
enum Reply {
    Scalar,
    Array(Vec<Option<Vec<u8>>>),
}

fn bad(what: impl std::fmt::Display) -> Error {
    Error::Http(format!("redis: {what}"))
}

fn header(line: &[u8]) -> Result<(u8, i64)> {
    let line = line
        .strip_suffix(b"\r\n")
        .ok_or_else(|| bad("reply line without CRLF"))?;
    let (&kind, rest) = line.split_first().ok_or_else(|| bad("empty reply line"))?;
    if kind == b'-' {
        return Err(bad(String::from_utf8_lossy(rest)));
    }
    let n = match kind {
        b'*' | b'$' | b':' => std::str::from_utf8(rest)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad length"))?,
        _ => 0,
    };
    Ok((kind, n))
}

/// Reads one reply from a blocking stream (loading only needs to see it is not an error).
fn read_reply_sync(r: &mut impl BufRead) -> Result<()> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    let (kind, n) = header(&line)?;
    fn skip(r: &mut impl BufRead, len: i64) -> Result<()> {
        if len >= 0 {
            let mut buf = vec![0; len as usize + 2];
            r.read_exact(&mut buf)?;
        }
        Ok(())
    }
    match kind {
        b'$' => skip(r, n),
        b'*' => {
            for _ in 0..n.max(0) {
                let mut line = Vec::new();
                r.read_until(b'\n', &mut line)?;
                let (_, len) = header(&line)?;
                skip(r, len)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

async fn read_reply(r: &mut tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>) -> Result<Reply> {
    let mut line = Vec::with_capacity(32);
    r.read_until(b'\n', &mut line).await?;
    let (kind, n) = header(&line)?;
    let bulk = async |r: &mut tokio::io::BufReader<_>, len: i64| -> Result<Option<Vec<u8>>> {
        if len < 0 {
            return Ok(None);
        }
        let mut buf = vec![0; len as usize + 2];
        r.read_exact(&mut buf).await?;
        buf.truncate(len as usize);
        Ok(Some(buf))
    };
    match kind {
        b'$' => Ok(Reply::Array(vec![bulk(r, n).await?])),
        b'*' => {
            let mut items = Vec::with_capacity(n.max(0) as usize);
            for _ in 0..n.max(0) {
                line.clear();
                r.read_until(b'\n', &mut line).await?;
                let (_, len) = header(&line)?;
                items.push(bulk(r, len).await?);
            }
            Ok(Reply::Array(items))
        }
        _ => Ok(Reply::Scalar),
    }
}

/// A tweet as `GET /feed` shows it (the fields and order of the API's Tweet).
#[derive(Serialize)]
struct TweetJson<'a> {
    id: String,
    author_id: String,
    author_handle: &'a str,
    text: &'a str,
    hashtags: &'a [String],
    media: Vec<serde_json::Value>,
    created_at: String,
    extra: &'a serde_json::Map<String, serde_json::Value>,
}

fn tweet_json(t: &Tweet) -> Result<Vec<u8>> {
    let created = chrono::DateTime::from_timestamp_millis(t.created_at_ms as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let media = t
        .media
        .iter()
        .map(|m| serde_json::json!({"id": m.id, "url": m.url, "content_type": m.content_type}))
        .collect();
    Ok(serde_json::to_vec(&TweetJson {
        id: t.id.to_string(),
        author_id: t.author_id.to_string(),
        author_handle: &t.author_handle,
        text: &t.text,
        hashtags: &t.hashtags,
        media,
        created_at: created,
        extra: &t.extra,
    })?)
}

/// What [`load`] stored.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Home lists written.
    pub feeds: u64,
    /// Ids in them.
    pub rows: u64,
    /// `SET`s of tweet documents (each loading thread sets the tweets its pages show once).
    pub tweet_sets: u64,
    /// Wall time.
    pub secs: f64,
}

/// Stores every user's first home page of `page` tweets from the stopped node at `data` into
/// the (emptied) Redis at `redis`, over `threads` threads.
pub fn load(
    data: &Path,
    sidecar: &Sidecar,
    redis: SocketAddr,
    page: usize,
    threads: usize,
) -> Result<LoadReport> {
    let started = Instant::now();
    let mut config = NodeConfig::new(data);
    config.celebrity_threshold = sidecar.celebrity_threshold;
    config.sync_writes = false;
    let node = Node::open(config)?;
    {
        let mut s = TcpStream::connect(redis)?;
        let mut buf = Vec::new();
        command(&mut buf, &[b"FLUSHALL"]);
        s.write_all(&buf)?;
        read_reply_sync(&mut BufReader::new(s))?;
    }
    let users = sidecar.params.users;
    let (feeds, rows, tweets) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let pb = indicatif::ProgressBar::new(users as u64).with_message("loading Redis");
    let threads = threads.max(1);
    std::thread::scope(|scope| -> Result<()> {
        let mut handles = Vec::new();
        for t in 0..threads {
            let (node, feeds, rows, tweets, pb) = (&node, &feeds, &rows, &tweets, &pb);
            handles.push(scope.spawn(move || -> Result<()> {
                let s = TcpStream::connect(redis)?;
                let mut reader = BufReader::new(s.try_clone()?);
                let mut writer = s;
                let mut seen = std::collections::HashSet::new();
                let (mut buf, mut pending) = (Vec::new(), 0usize);
                for i in (t..users).step_by(threads) {
                    let user = node.resolve_user(&format!("@{}", network::handle(i)))?;
                    let items = node
                        .home_feed(
                            user,
                            PageRequest {
                                after: None,
                                limit: page,
                            },
                        )?
                        .items;
                    let key = format!("home:u{i}");
                    let ids: Vec<String> = items.iter().map(|t| t.id.to_string()).collect();
                    let mut args: Vec<&[u8]> = vec![b"RPUSH", key.as_bytes()];
                    args.extend(ids.iter().map(|s| s.as_bytes()));
                    if !ids.is_empty() {
                        command(&mut buf, &args);
                        pending += 1;
                        feeds.fetch_add(1, Ordering::Relaxed);
                        rows.fetch_add(ids.len() as u64, Ordering::Relaxed);
                    }
                    for t in &items {
                        if seen.insert(t.id) {
                            let k = format!("tweet:{}", t.id);
                            command(&mut buf, &[b"SET", k.as_bytes(), &tweet_json(t)?]);
                            pending += 1;
                            tweets.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if pending >= LOAD_BATCH {
                        writer.write_all(&buf)?;
                        for _ in 0..pending {
                            read_reply_sync(&mut reader)?;
                        }
                        (buf, pending) = (Vec::new(), 0);
                    }
                    pb.inc(1);
                }
                writer.write_all(&buf)?;
                for _ in 0..pending {
                    read_reply_sync(&mut reader)?;
                }
                Ok(())
            }));
        }
        for h in handles {
            h.join().map_err(|_| bad("a loading thread panicked"))??;
        }
        Ok(())
    })?;
    pb.finish_and_clear();
    node.close()?;
    Ok(LoadReport {
        feeds: feeds.into_inner(),
        rows: rows.into_inner(),
        tweet_sets: tweets.into_inner(),
        secs: started.elapsed().as_secs_f64(),
    })
}

/// How [`run`] reads.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// The Redis server.
    pub redis: SocketAddr,
    /// Users in the network.
    pub users: usize,
    /// Users sampled as `chirp-load run --sessions` samples them.
    pub sessions: usize,
    /// Connections.
    pub connections: usize,
    /// Pages in flight per connection.
    pub pipeline: usize,
    /// Tweets per page.
    pub page: usize,
    /// Measured time.
    pub duration: Duration,
    /// Unmeasured time first.
    pub warmup: Duration,
    /// Random seed (`chirp-load run --seed`).
    pub seed: u64,
}

/// Reads home pages from Redis closed-loop; the report's one operation is `redis_home_page`.
pub async fn run(cfg: &PeerConfig) -> Result<PhaseReport> {
    let wanted = Arc::new(sample_users(cfg.users, cfg.sessions, cfg.seed));
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + cfg.warmup;
    let end = measure_from + cfg.duration;
    let mut tasks = Vec::new();
    for j in 0..cfg.connections.max(1) {
        let (wanted, cfg) = (Arc::clone(&wanted), cfg.clone());
        let seed = cfg.seed ^ (j as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(cfg.redis).await?;
            stream.set_nodelay(true)?;
            let (rd, mut wr) = stream.into_split();
            let mut rd = tokio::io::BufReader::with_capacity(64 * 1024, rd);
            let mut rng = StdRng::seed_from_u64(seed);
            let mut stats = Stats::default();
            let last = (cfg.page.max(1) - 1).to_string();
            let mut buf = Vec::with_capacity(4096);
            tokio::time::sleep_until(start.into()).await;
            while Instant::now() < end {
                let began = Instant::now();
                buf.clear();
                for _ in 0..cfg.pipeline.max(1) {
                    let i = wanted[rng.gen_range(0..wanted.len())];
                    let key = format!("home:u{i}");
                    command(
                        &mut buf,
                        &[b"LRANGE", key.as_bytes(), b"0", last.as_bytes()],
                    );
                }
                wr.write_all(&buf).await?;
                let mut pages = Vec::with_capacity(cfg.pipeline.max(1));
                for _ in 0..cfg.pipeline.max(1) {
                    match read_reply(&mut rd).await? {
                        Reply::Array(ids) => pages.push(ids),
                        Reply::Scalar => return Err(bad("LRANGE answered a scalar")),
                    }
                }
                buf.clear();
                for ids in &pages {
                    let keys: Vec<Vec<u8>> = ids
                        .iter()
                        .flatten()
                        .map(|id| [b"tweet:".as_slice(), id].concat())
                        .collect();
                    let mut args: Vec<&[u8]> = vec![b"MGET"];
                    args.extend(keys.iter().map(Vec::as_slice));
                    command(&mut buf, &args);
                }
                wr.write_all(&buf).await?;
                let mut ok = 0;
                for ids in &pages {
                    let found = match read_reply(&mut rd).await? {
                        Reply::Array(docs) => docs.iter().flatten().count(),
                        Reply::Scalar => 0,
                    };
                    // A page is good when every listed tweet came back.
                    ok += usize::from(!ids.is_empty() && found == ids.len());
                }
                if began < measure_from {
                    continue;
                }
                let s = stats.op("redis_home_page");
                for _ in 0..ok {
                    s.ok(began.elapsed());
                }
                s.errors += (pages.len() - ok) as u64;
            }
            Ok::<_, Error>(stats)
        }));
    }
    let mut stats = Stats::default();
    for t in tasks {
        stats.merge(&t.await.map_err(|e| Error::Http(e.to_string()))??);
    }
    Ok(PhaseReport::new(
        "redis timeline (LRANGE + MGET)",
        &stats,
        cfg.duration.as_secs_f64(),
    ))
}
