//! `chirp serve`'s configuration: a TOML file, `CHIRP_*` environment variables and flags, in
//! rising precedence over the defaults. `chirp.example.toml` at the repository root documents
//! every setting; a test keeps it in step with [`Config`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::builder::BoolishValueParser;
use serde::{Deserialize, Serialize};

use chirp_engine::{Error, NodeConfig};

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with the request span's fields (request id, route).
    Json,
}

/// The effective settings of a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Data directory (created if missing).
    pub data: PathBuf,
    /// Address of the public API (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Address of the admin listener (status, metrics, compaction, backups, accounts).
    pub admin_listen: SocketAddr,
    /// File holding the admin listener's bearer token, created (mode 0600) if missing; empty
    /// means `admin.token` in the data directory.
    pub admin_token_file: PathBuf,
    /// Shards of a new data directory (an existing one keeps its count).
    pub shards: usize,
    /// Block cache shared by all shards, in MiB.
    pub block_cache_mb: usize,
    /// Authors with more followers than this are merged into feeds at read time.
    pub celebrity_threshold: u64,
    /// Memory for the hot-tweet cache, in MiB (0 disables it).
    pub tweet_cache_mb: usize,
    /// Readers whose first home page is kept merged in memory (0 disables the cache).
    pub home_cache_entries: usize,
    /// Rows kept per materialized home feed.
    pub home_cap: usize,
    /// Recent tweets copied into a feed when following someone.
    pub backfill: usize,
    /// Threads copying tweets into followers' feeds; 0 means one per core (at least 2).
    pub fanout_workers: usize,
    /// Connections served at once on the public listener.
    pub max_connections: usize,
    /// Largest image upload, in bytes.
    pub max_media_bytes: usize,
    /// Relaxed durability: acknowledge writes before they are fsynced.
    pub no_sync: bool,
    /// Wrong passwords per account per `login_window_secs` before log-ins to it get 429.
    pub login_failures_per_account: u32,
    /// Wrong passwords per client address per `login_window_secs` before its log-ins get 429.
    pub login_failures_per_address: u32,
    /// The window of the two log-in limits, in seconds.
    pub login_window_secs: u64,
    /// Sign-ups per client address per hour.
    pub signups_per_address_per_hour: u32,
    /// Writes (posts, follows, profile edits, uploads, deletes) per user per minute.
    pub writes_per_user_per_minute: u32,
    /// Believe the last `X-Forwarded-For` entry as the client address (behind a proxy only).
    pub trust_forwarded_for: bool,
    /// Seconds a session lasts after its last use (each use extends it).
    pub session_lifetime_secs: u64,
    /// Log filter when `RUST_LOG` is not set (same syntax).
    pub log_filter: String,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
}

impl Default for Config {
    fn default() -> Self {
        let node = NodeConfig::new("./data");
        Config {
            data: node.data_dir,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            admin_token_file: PathBuf::new(),
            shards: node.shards,
            block_cache_mb: node.block_cache_bytes >> 20,
            celebrity_threshold: node.celebrity_threshold,
            tweet_cache_mb: node.tweet_cache_bytes >> 20,
            home_cache_entries: node.home_cache_entries,
            home_cap: node.home_cap,
            backfill: node.backfill,
            // Not node.fanout_workers: that is this machine's core count, and the default
            // (as printed and documented) should say "per core" on every machine.
            fanout_workers: 0,
            max_connections: 4096,
            max_media_bytes: node.max_media_bytes,
            no_sync: !node.sync_writes,
            login_failures_per_account: 10,
            login_failures_per_address: 50,
            login_window_secs: 300,
            signups_per_address_per_hour: 20,
            writes_per_user_per_minute: 600,
            trust_forwarded_for: false,
            session_lifetime_secs: node.session_lifetime.as_secs(),
            log_filter: "info".into(),
            log_format: LogFormat::Text,
        }
    }
}

/// `chirp serve`'s flags; each (but the first two) also reads a `CHIRP_*` variable, and
/// overrides the config file. Defaults are [`Config::default`].
#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file (every setting is documented in chirp.example.toml).
    #[arg(long, env = "CHIRP_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Data directory, created if missing [default: ./data].
    #[arg(long, env = "CHIRP_DATA")]
    pub data: Option<PathBuf>,
    /// Address of the public API; port 0 picks a free port [default: 127.0.0.1:8080].
    #[arg(long, env = "CHIRP_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Address of the admin listener, loopback unless you mean it [default: 127.0.0.1:8081].
    #[arg(long, env = "CHIRP_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// File holding the admin listener's token, created if missing [default: DATA/admin.token].
    #[arg(long, env = "CHIRP_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Shards of a new data directory; an existing one keeps its count [default: 4].
    #[arg(long, env = "CHIRP_SHARDS")]
    pub shards: Option<usize>,
    /// Block cache shared by all shards, in MiB [default: 256].
    #[arg(long, env = "CHIRP_BLOCK_CACHE_MB")]
    pub block_cache_mb: Option<usize>,
    /// Authors with more followers are merged into feeds at read time [default: 10000].
    #[arg(long, env = "CHIRP_CELEBRITY_THRESHOLD")]
    pub celebrity_threshold: Option<u64>,
    /// Memory for the hot-tweet cache in MiB; 0 disables it [default: 128].
    #[arg(long, env = "CHIRP_TWEET_CACHE_MB")]
    pub tweet_cache_mb: Option<usize>,
    /// Readers whose first home page is kept merged in memory (about 300 bytes each); 0
    /// disables the home-page cache [default: 100000].
    #[arg(long, env = "CHIRP_HOME_CACHE_ENTRIES")]
    pub home_cache_entries: Option<usize>,
    /// Rows kept per materialized home feed [default: 800].
    #[arg(long, env = "CHIRP_HOME_CAP")]
    pub home_cap: Option<usize>,
    /// Recent tweets copied into a feed when following someone [default: 100].
    #[arg(long, env = "CHIRP_BACKFILL")]
    pub backfill: Option<usize>,
    /// Threads copying tweets into followers' feeds; 0: one per core, at least 2 [default: 0].
    #[arg(long, env = "CHIRP_FANOUT_WORKERS")]
    pub fanout_workers: Option<usize>,
    /// Most connections served at once [default: 4096].
    #[arg(long, env = "CHIRP_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Largest image upload, in bytes [default: 5242880].
    #[arg(long, env = "CHIRP_MAX_MEDIA_BYTES")]
    pub max_media_bytes: Option<usize>,
    /// Relaxed durability: acknowledge writes without fsync. A process crash loses nothing the
    /// OS already has; a power cut or kernel crash loses every write since the last memtable
    /// flush. `--no-sync` alone means true.
    #[arg(long, env = "CHIRP_NO_SYNC", num_args = 0..=1, default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    pub no_sync: Option<bool>,
    /// Seconds a session lasts after its last use; each use extends it [default: 2592000,
    /// 30 days].
    #[arg(long, env = "CHIRP_SESSION_LIFETIME_SECS")]
    pub session_lifetime_secs: Option<u64>,
    /// Log filter when RUST_LOG is not set [default: info].
    #[arg(long, env = "CHIRP_LOG_FILTER")]
    pub log_filter: Option<String>,
    /// Log line format [default: text].
    #[arg(long, env = "CHIRP_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Wrong passwords per account per window before 429; 0: no limit [default: 10].
    #[arg(long, env = "CHIRP_LOGIN_FAILURES_PER_ACCOUNT")]
    pub login_failures_per_account: Option<u32>,
    /// Wrong passwords per client address per window before 429; 0: no limit [default: 50].
    #[arg(long, env = "CHIRP_LOGIN_FAILURES_PER_ADDRESS")]
    pub login_failures_per_address: Option<u32>,
    /// The log-in limits' window in seconds [default: 300].
    #[arg(long, env = "CHIRP_LOGIN_WINDOW_SECS")]
    pub login_window_secs: Option<u64>,
    /// Sign-ups per client address per hour; 0: no limit [default: 20].
    #[arg(long, env = "CHIRP_SIGNUPS_PER_ADDRESS_PER_HOUR")]
    pub signups_per_address_per_hour: Option<u32>,
    /// Writes per user per minute; 0: no limit [default: 600].
    #[arg(long, env = "CHIRP_WRITES_PER_USER_PER_MINUTE")]
    pub writes_per_user_per_minute: Option<u32>,
    /// Take the client address from X-Forwarded-For (only behind a proxy that sets it).
    #[arg(long, env = "CHIRP_TRUST_FORWARDED_FOR", num_args = 0..=1, default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    pub trust_forwarded_for: Option<bool>,
    /// Replication (flags and environment only).
    #[command(flatten)]
    pub repl: crate::replication::ReplArgs,
    /// Cluster membership through etcd (flags and environment only).
    #[command(flatten)]
    pub cluster: crate::cluster::ClusterArgs,
}

fn invalid(field: &'static str, message: impl Into<String>) -> Error {
    Error::invalid(field, message)
}

impl Config {
    /// The rate limits as configured.
    pub fn limit_settings(&self) -> crate::limits::LimitSettings {
        crate::limits::LimitSettings {
            login_failures_per_account: self.login_failures_per_account,
            login_failures_per_address: self.login_failures_per_address,
            login_window: std::time::Duration::from_secs(self.login_window_secs.max(1)),
            signups_per_address_per_hour: self.signups_per_address_per_hour,
            writes_per_user_per_minute: self.writes_per_user_per_minute,
            trust_forwarded_for: self.trust_forwarded_for,
        }
    }

    /// Where the admin token is kept.
    pub fn admin_token_path(&self) -> PathBuf {
        if self.admin_token_file.as_os_str().is_empty() {
            self.data.join("admin.token")
        } else {
            self.admin_token_file.clone()
        }
    }

    /// Parses a config file's text; unknown settings are refused so a typo is not ignored.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Config, Error> {
        toml::from_str(text).map_err(|e| invalid("config", format!("{}: {e}", origin.display())))
    }

    /// The effective configuration: defaults, then the file named by `--config` (or
    /// `CHIRP_CONFIG`), then environment variables and flags (clap gives flags precedence
    /// over the environment).
    pub fn load(args: &ServeArgs) -> Result<Config, Error> {
        let mut config = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| invalid("config", format!("{}: {e}", path.display())))?;
                Config::from_toml(&text, path)?
            }
            None => Config::default(),
        };
        config.apply(args);
        config.validate()?;
        Ok(config)
    }

    fn apply(&mut self, args: &ServeArgs) {
        fn set<T: Clone>(slot: &mut T, value: &Option<T>) {
            if let Some(v) = value {
                *slot = v.clone();
            }
        }
        set(&mut self.data, &args.data);
        set(&mut self.listen, &args.listen);
        set(&mut self.admin_listen, &args.admin_listen);
        set(&mut self.admin_token_file, &args.admin_token_file);
        set(&mut self.shards, &args.shards);
        set(&mut self.block_cache_mb, &args.block_cache_mb);
        set(&mut self.celebrity_threshold, &args.celebrity_threshold);
        set(&mut self.tweet_cache_mb, &args.tweet_cache_mb);
        set(&mut self.home_cache_entries, &args.home_cache_entries);
        set(&mut self.home_cap, &args.home_cap);
        set(&mut self.backfill, &args.backfill);
        set(&mut self.fanout_workers, &args.fanout_workers);
        set(&mut self.max_connections, &args.max_connections);
        set(&mut self.max_media_bytes, &args.max_media_bytes);
        set(&mut self.no_sync, &args.no_sync);
        set(&mut self.session_lifetime_secs, &args.session_lifetime_secs);
        set(&mut self.log_filter, &args.log_filter);
        set(&mut self.log_format, &args.log_format);
        set(
            &mut self.login_failures_per_account,
            &args.login_failures_per_account,
        );
        set(
            &mut self.login_failures_per_address,
            &args.login_failures_per_address,
        );
        set(&mut self.login_window_secs, &args.login_window_secs);
        set(
            &mut self.signups_per_address_per_hour,
            &args.signups_per_address_per_hour,
        );
        set(
            &mut self.writes_per_user_per_minute,
            &args.writes_per_user_per_minute,
        );
        set(&mut self.trust_forwarded_for, &args.trust_forwarded_for);
    }

    fn validate(&self) -> Result<(), Error> {
        if self.home_cap == 0 {
            return Err(invalid("home_cap", "must be at least 1"));
        }
        if self.session_lifetime_secs == 0 {
            return Err(invalid("session_lifetime_secs", "must be at least 1"));
        }
        if self.max_connections == 0 {
            return Err(invalid("max_connections", "must be at least 1"));
        }
        if self.shards == 0 || self.shards > chirp_engine::ids::MAX_SHARDS {
            return Err(invalid(
                "shards",
                format!("must be 1 to {}", chirp_engine::ids::MAX_SHARDS),
            ));
        }
        let (public, admin) = (self.listen, self.admin_listen);
        if public.port() != 0 && public.port() == admin.port() && public.ip() == admin.ip() {
            return Err(invalid(
                "admin_listen",
                "must differ from listen: admin endpoints are never served on the public port",
            ));
        }
        Ok(())
    }

    /// The configuration as TOML (what `--print-config` shows).
    pub fn to_toml(&self) -> Result<String, Error> {
        toml::to_string(self).map_err(|e| invalid("config", e.to_string()))
    }

    /// The engine's settings.
    pub fn node_config(&self) -> NodeConfig {
        let mut node = NodeConfig::new(&self.data);
        node.shards = self.shards;
        node.block_cache_bytes = self.block_cache_mb << 20;
        node.celebrity_threshold = self.celebrity_threshold;
        node.tweet_cache_bytes = self.tweet_cache_mb << 20;
        node.home_cache_entries = self.home_cache_entries;
        node.home_cap = self.home_cap;
        node.backfill = self.backfill;
        if self.fanout_workers > 0 {
            node.fanout_workers = self.fanout_workers;
        }
        node.sync_writes = !self.no_sync;
        node.max_media_bytes = self.max_media_bytes;
        node.session_lifetime = std::time::Duration::from_secs(self.session_lifetime_secs);
        node
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../chirp.example.toml");

    #[test]
    fn the_example_documents_every_setting_with_its_default() {
        let example = Config::from_toml(EXAMPLE, Path::new("chirp.example.toml"))
            .expect("the example parses");
        assert_eq!(example, Config::default());
        let documented: toml::Table = toml::from_str(EXAMPLE).expect("toml");
        let all: toml::Table =
            toml::from_str(&Config::default().to_toml().expect("prints")).expect("toml");
        let mut documented: Vec<&String> = documented.keys().collect();
        let mut all: Vec<&String> = all.keys().collect();
        documented.sort();
        all.sort();
        assert_eq!(documented, all);
    }

    #[test]
    fn flags_and_env_override_the_file() {
        let file = Config::from_toml(
            "shards = 8\nhome_cap = 50\nlisten = \"127.0.0.1:9000\"\n",
            Path::new("x.toml"),
        )
        .expect("parses");
        let mut config = file.clone();
        config.apply(&ServeArgs {
            home_cap: Some(60),
            no_sync: Some(true),
            ..ServeArgs::default()
        });
        assert_eq!(config.shards, 8);
        assert_eq!(config.home_cap, 60);
        assert!(config.no_sync);
        assert_eq!(config.listen, "127.0.0.1:9000".parse().expect("addr"));
        assert_eq!(config.admin_listen, Config::default().admin_listen);
    }

    #[test]
    fn bad_settings_are_named() {
        let err = Config::from_toml("shardz = 3\n", Path::new("x.toml")).expect_err("typo");
        assert!(err.to_string().contains("shardz"), "{err}");
        let same = Config {
            admin_listen: "127.0.0.1:8080".parse().expect("addr"),
            ..Config::default()
        };
        assert!(matches!(
            same.validate(),
            Err(Error::Invalid {
                field: "admin_listen",
                ..
            })
        ));
        let round = Config::from_toml(
            &Config::default().to_toml().expect("prints"),
            Path::new("p"),
        )
        .expect("round trip");
        assert_eq!(round, Config::default());
    }
}
