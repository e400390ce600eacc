//! `chirp-load generate`: draws the synthetic network and bulk-imports it into a stopped
//! node's data dir through the engine's import path, then writes the sidecar file that
//! `chirp-load run` reads (user count, password, probe accounts for fan-out lag).
//!
//! With `--cluster NAME` the dir is made a node of that cluster holding every shard as its
//! primary: start it with `chirp serve --etcd ... --cluster NAME`, `chirpctl node add` it
//! alone (the map then gives it every shard), add the other nodes and `chirpctl rebalance`:
//! they take their copies from checkpoints (an import leaves nothing in the oplog to replay).

use std::path::{Path, PathBuf};
use std::time::Instant;

use chirp_engine::{ImportProgress, ImportSet, ImportTweet, ImportUser, Node, NodeConfig};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::load::network::{self, NetworkParams, Zipf, PASSWORD};

/// The sidecar file `generate` leaves in the data dir.
pub const SIDECAR: &str = "chirp-load.json";

/// A (author, follower) pair whose fan-out lag the run samples.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Probe {
    /// What kind of author: `typical`, `large` (the most followed below the celebrity
    /// threshold) or `celebrity` (merged at read time).
    pub class: String,
    /// The author's user index.
    pub author: usize,
    /// How many followers the author has.
    pub author_followers: u64,
    /// A follower's user index.
    pub follower: usize,
}

/// What `run` needs to know about a generated network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sidecar {
    /// How the network was drawn.
    pub params: NetworkParams,
    /// Every synthetic user's password.
    pub password: String,
    /// The celebrity threshold the feeds were built with.
    pub celebrity_threshold: u64,
    /// Authors whose fan-out lag is sampled.
    pub probes: Vec<Probe>,
}

impl Sidecar {
    /// Reads a sidecar file.
    pub fn load(path: &Path) -> Result<Sidecar> {
        Ok(serde_json::from_slice(&std::fs::read(path)?)?)
    }
}

/// Where and how to generate.
#[derive(Debug, Clone)]
pub struct GenerateConfig {
    /// The data dir (a stopped node's, or a new one).
    pub data: PathBuf,
    /// Shards of a new data dir (a cluster's: its shard count).
    pub shards: usize,
    /// Make the dir a node of this cluster, holding every shard as its primary.
    pub cluster: Option<String>,
    /// Authors with more followers are merged at read time (must match `chirp serve`).
    pub celebrity_threshold: u64,
    /// Rows kept per home feed (must match `chirp serve`).
    pub home_cap: usize,
    /// The network.
    pub params: NetworkParams,
}

/// What `generate` did and how long each part took.
#[derive(Debug, Clone, Serialize)]
pub struct GenerateReport {
    /// Users created.
    pub users: usize,
    /// Follow edges created.
    pub follows: usize,
    /// Tweets created.
    pub tweets: usize,
    /// Seconds drawing the network.
    pub draw_secs: f64,
    /// Seconds importing (SST build + ingest).
    pub import_secs: f64,
    /// Seconds flushing and closing.
    pub close_secs: f64,
    /// Follower counts of the most followed accounts.
    pub top_followers: Vec<u64>,
    /// Accounts past the celebrity threshold.
    pub celebrities: usize,
    /// Rows written per column family.
    pub rows: Vec<(String, u64)>,
    /// Live SST bytes per column family after the import.
    pub sst_bytes: Vec<(String, u64)>,
    /// SST files ingested.
    pub files: usize,
}

fn bar(total: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template("{msg:>36} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(what.to_string());
    pb
}

struct Bars(std::sync::Mutex<Option<ProgressBar>>);

impl ImportProgress for Bars {
    fn phase(&self, name: &'static str, total: u64) {
        if let Ok(mut b) = self.0.lock() {
            if let Some(old) = b.take() {
                old.finish();
            }
            *b = Some(bar(total, name));
        }
    }
    fn advance(&self, n: u64) {
        if let Ok(b) = self.0.lock() {
            if let Some(b) = b.as_ref() {
                b.inc(n);
            }
        }
    }
}

/// Draws the network and imports it into `config.data`.
pub fn generate(config: &GenerateConfig) -> Result<GenerateReport> {
    let p = &config.params;
    if p.users < 2 || p.users > u32::MAX as usize / 2 {
        return Err(Error::Invalid("--users must be from 2 to 2^31".into()));
    }
    let started = Instant::now();
    let pb = bar(p.users as u64, "drawing follow graph");
    let follows = network::follows(p, &|n| pb.inc(n));
    pb.finish();
    let mut followers = vec![0u64; p.users];
    for &(_, b) in &follows {
        followers[b as usize] += 1;
    }
    let probes = pick_probes(&follows, &followers, config.celebrity_threshold);
    let phc = chirp_engine::accounts::hash_password(PASSWORD)?;
    let users = (0..p.users)
        .map(|i| ImportUser {
            handle: network::handle(i),
            display_name: format!("User {i}"),
            password_phc: phc.clone(),
        })
        .collect();
    let tags = Zipf::new(p.hashtags.max(1), 1.0);
    let mut rng = StdRng::seed_from_u64(p.seed);
    let mut tweets = Vec::with_capacity(p.users * p.tweets_per_user);
    for i in 0..p.users {
        for k in 0..p.tweets_per_user {
            tweets.push(ImportTweet {
                author: i as u32,
                text: network::tweet_text(i, k, &tags, &mut rng),
            });
        }
    }
    let set = ImportSet {
        users,
        follows,
        tweets,
    };
    let (n_follows, n_tweets) = (set.follows.len(), set.tweets.len());
    let draw_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut node_config = NodeConfig::new(&config.data);
    node_config.shards = config.shards;
    node_config.celebrity_threshold = config.celebrity_threshold;
    node_config.home_cap = config.home_cap.max(1);
    node_config.sync_writes = false;
    if let Some(cluster) = &config.cluster {
        node_config.cluster = Some(cluster.clone());
        node_config.hold = Some((0..config.shards).collect());
    }
    let node = Node::open(node_config)?;
    if config.cluster.is_some() {
        // The import writes every shard as their primary; the map makes this node that once
        // it is added alone.
        for s in 0..config.shards {
            node.set_shard_primary(s, true)?;
        }
    }
    let bars = Bars(std::sync::Mutex::new(None));
    let imported = node.import(set, &bars)?;
    bars.phase("done", 0);
    let import_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    node.flush()?;
    let sst_bytes = node
        .sst_bytes_per_cf()?
        .into_iter()
        .map(|(cf, b)| (cf.to_string(), b))
        .collect();
    node.close()?;
    let close_secs = started.elapsed().as_secs_f64();

    let sidecar = Sidecar {
        params: p.clone(),
        password: PASSWORD.to_string(),
        celebrity_threshold: config.celebrity_threshold,
        probes,
    };
    std::fs::write(
        config.data.join(SIDECAR),
        serde_json::to_vec_pretty(&sidecar)?,
    )?;
    let mut top = followers.clone();
    top.sort_unstable_by(|a, b| b.cmp(a));
    top.truncate(5);
    Ok(GenerateReport {
        users: p.users,
        follows: n_follows,
        tweets: n_tweets,
        draw_secs,
        import_secs,
        close_secs,
        celebrities: followers
            .iter()
            .filter(|&&f| f > config.celebrity_threshold)
            .count(),
        top_followers: top,
        rows: imported
            .rows
            .into_iter()
            .map(|(cf, n)| (cf.to_string(), n))
            .collect(),
        sst_bytes,
        files: imported.files,
    })
}

/// One probe per class that exists in this network: a typical author (followers nearest
/// the mean), the most followed author below the threshold, and the most followed overall.
fn pick_probes(follows: &[(u32, u32)], followers: &[u64], threshold: u64) -> Vec<Probe> {
    let mean = follows.len() as u64 / followers.len().max(1) as u64;
    let by = |pred: &dyn Fn(u64) -> bool, key: &dyn Fn(u64) -> u64| {
        followers
            .iter()
            .enumerate()
            .filter(|&(_, &f)| f > 0 && pred(f))
            .min_by_key(|&(_, &f)| key(f))
            .map(|(i, &f)| (i, f))
    };
    let candidates = [
        ("typical", by(&|f| f <= threshold, &|f| f.abs_diff(mean))),
        ("large", by(&|f| f <= threshold, &|f| u64::MAX - f)),
        ("celebrity", by(&|f| f > threshold, &|f| u64::MAX - f)),
    ];
    let mut probes = Vec::new();
    for (class, found) in candidates {
        let Some((author, author_followers)) = found else {
            continue;
        };
        // The follower is the last one drawn, an arbitrary but fixed choice.
        if let Some(&(follower, _)) = follows.iter().rev().find(|&&(_, b)| b as usize == author) {
            probes.push(Probe {
                class: class.to_string(),
                author,
                author_followers,
                follower: follower as usize,
            });
        }
    }
    probes
}
