//! `chirpctl`, the admin CLI: its commands and what they print.
//!
//! Every command acts on a running node through its admin listener (`--admin URL`, the
//! default) or on a stopped node's data dir (`--data DIR`), which it opens directly; RocksDB's
//! lock makes that fail while a node runs on the dir. A data dir is opened read-only, except
//! for the account commands that write, which refuse a replica's dir. Output is a table for
//! people, or the engine's JSON shape with `--json`.

pub mod render;
pub mod target;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rand::distributions::{Alphanumeric, DistString};

use chirp_engine::NewUser;

use crate::error::{Error, Result};
use target::{to_json, Target};

/// Exit status of a command that ran but found damage (`verify`); errors exit with 1.
pub const EXIT_DAMAGED: u8 = 2;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "chirpctl",
    version,
    about = "Operate Chirp nodes and clusters: status, compaction, backups, accounts, verification, membership"
)]
pub struct Cli {
    /// Admin listener of a running node.
    #[arg(
        long,
        env = "CHIRP_ADMIN",
        default_value = "http://127.0.0.1:8081",
        global = true
    )]
    pub admin: String,
    /// The admin listener's token [default: read from --admin-token-file].
    #[arg(long, env = "CHIRP_ADMIN_TOKEN", global = true, hide_env_values = true)]
    pub admin_token: Option<String>,
    /// File holding the admin listener's token (the node's `DATA/admin.token`)
    /// [default: ./data/admin.token, when it exists].
    #[arg(long, env = "CHIRP_ADMIN_TOKEN_FILE", global = true)]
    pub admin_token_file: Option<PathBuf>,
    /// Act on the data dir of a stopped node instead (for `restore`: the dir to restore into).
    #[arg(long, global = true)]
    pub data: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replication: node certificates, promotion, replication status, digests.
    #[command(flatten)]
    Repl(crate::repl::ReplCommand),
    /// The cluster: its CA (`init`), and on etcd its creation and status.
    #[command(subcommand)]
    Cluster(crate::cluster::ClusterCommand),
    /// Cluster members: adding running nodes.
    #[command(subcommand)]
    Node(crate::cluster::NodeCommand),
    /// Shards of a cluster: copies added, taken out and moved; planned handovers.
    #[command(subcommand)]
    Shard(crate::cluster::ShardCommand),
    /// Moves of shard copies under way: list, status, abort.
    #[command(subcommand)]
    Move(crate::cluster::MoveCommand),
    /// Even out copies and primaries over the cluster's active members, a few moves at a
    /// time (after `node add`, say).
    Rebalance(crate::cluster::RebalanceArgs),
    /// Shards, sizes and key estimates per column family, cache, fan-out queue, uptime.
    Status,
    /// Compact one shard or all (bytes before and after).
    Compact {
        /// Only this shard.
        #[arg(long)]
        shard: Option<usize>,
    },
    /// Write a consistent backup of a live node (or a stopped dir) to DIR (missing or empty).
    Checkpoint {
        /// Where to write it; for a live node, a path on the node's machine.
        dir: PathBuf,
    },
    /// Copy a checkpoint into an empty data dir given by --data.
    Restore {
        /// The checkpoint to restore.
        checkpoint: PathBuf,
    },
    /// Account actions.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Check every invariant of every shard; exits 2 if any is broken.
    Verify,
}

/// `chirpctl users ...`; USER is a numeric id or a handle (with or without `@`).
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create an account.
    Create {
        /// The handle.
        handle: String,
        /// The password (a random one is made and printed if omitted).
        #[arg(long, env = "CHIRPCTL_PASSWORD")]
        password: Option<String>,
        /// The display name (defaults to the handle).
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Show an account.
    Show {
        /// Id or handle.
        user: String,
    },
    /// Suspend an account: it cannot log in and its tokens are refused.
    Suspend {
        /// Id or handle.
        user: String,
    },
    /// Reinstate a suspended account.
    Unsuspend {
        /// Id or handle.
        user: String,
    },
    /// Set a new password and revoke every session of the user.
    ResetPassword {
        /// Id or handle.
        user: String,
        /// The new password (a random one is made and printed if omitted).
        #[arg(long, env = "CHIRPCTL_PASSWORD")]
        password: Option<String>,
    },
    /// Mint a bearer token for a user.
    Token {
        /// Id or handle.
        user: String,
    },
}

impl Command {
    /// Whether the command makes logged writes (on a data dir: only a primary's takes them).
    pub fn writes(&self) -> bool {
        match self {
            Command::Users(users) => !matches!(users, UsersCommand::Show { .. }),
            // Compaction and checkpoints rewrite or copy files, not rows.
            Command::Repl(_)
            | Command::Cluster(_)
            | Command::Node(_)
            | Command::Shard(_)
            | Command::Move(_)
            | Command::Rebalance(_)
            | Command::Status
            | Command::Compact { .. }
            | Command::Checkpoint { .. }
            | Command::Restore { .. }
            | Command::Verify => false,
        }
    }
}

fn random_password() -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), 20)
}

fn bar(total: u64, json: bool) -> ProgressBar {
    if json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed}]") {
        bar.set_style(style);
    }
    bar
}

/// Runs a command; returns the exit status (0, or [`EXIT_DAMAGED`]).
pub fn run(cli: Cli) -> Result<u8> {
    // Replication commands talk to the public API or write files; no admin target needed.
    if let Command::Repl(command) = &cli.command {
        let token = admin_token(&cli)?;
        crate::repl::run(command, cli.json, token.as_deref())
            .map_err(|e| Error::Invalid(format!("{e:#}")))?;
        return Ok(0);
    }
    // Cluster commands talk to etcd (or write the CA's files).
    match &cli.command {
        Command::Cluster(command) => return crate::cluster::run_cluster(command, cli.json),
        Command::Node(command) => return crate::cluster::run_node(command, cli.json),
        Command::Shard(command) => return crate::cluster::run_shard(command, cli.json),
        Command::Move(command) => return crate::cluster::run_move(command, cli.json),
        Command::Rebalance(args) => return crate::cluster::run_rebalance(args, cli.json),
        _ => {}
    }
    if let Command::Restore { checkpoint } = &cli.command {
        let target = cli.data.as_ref().ok_or_else(|| {
            Error::Invalid("restore needs --data TARGET, the dir to restore into".into())
        })?;
        let report = chirp_engine::restore(checkpoint, target)?;
        print(&cli, &report, || render::backup("restored into", &report))?;
        return Ok(0);
    }
    let target = match &cli.data {
        Some(dir) => Target::open_local(dir, cli.command.writes())?,
        None => Target::Remote(target::Remote::new(&cli.admin, admin_token(&cli)?)),
    };
    let code = execute(&cli, &target);
    target.close()?;
    code
}

/// The admin token: `--admin-token`, else the file `--admin-token-file` names, else
/// `./data/admin.token` (the default data dir's) when it exists.
fn admin_token(cli: &Cli) -> Result<Option<String>> {
    if let Some(token) = &cli.admin_token {
        return Ok(Some(token.trim().to_string()));
    }
    let (path, required) = match &cli.admin_token_file {
        Some(path) => (path.clone(), true),
        None => (PathBuf::from("data/admin.token"), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.trim().to_string())),
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Invalid(format!(
            "reading the admin token {}: {e}",
            path.display()
        ))),
    }
}

fn print(cli: &Cli, value: &impl serde::Serialize, human: impl FnOnce() -> String) -> Result<()> {
    if cli.json {
        println!("{}", to_json(value)?);
    } else {
        print!("{}", human());
    }
    Ok(())
}

fn execute(cli: &Cli, target: &Target) -> Result<u8> {
    let remote = matches!(target, Target::Remote(_));
    match &cli.command {
        Command::Restore { .. } => Err(Error::Invalid("restore runs without a node".into())),
        Command::Repl(_)
        | Command::Cluster(_)
        | Command::Node(_)
        | Command::Shard(_)
        | Command::Move(_)
        | Command::Rebalance(_) => Err(Error::Invalid(
            "replication and cluster commands run without --admin/--data".into(),
        )),
        Command::Status => {
            let stats = target.status()?;
            print(cli, &stats, || render::status(&stats, remote))?;
            Ok(0)
        }
        Command::Compact { shard } => {
            let progress = bar(0, cli.json);
            let report = target.compact(*shard, &mut |p| {
                progress.set_length(p.total as u64);
                progress.set_position(p.done as u64);
                progress.set_message(format!("shard {} {}", p.shard, p.column_family));
            })?;
            progress.finish_and_clear();
            print(cli, &report, || render::compaction(&report))?;
            Ok(0)
        }
        Command::Checkpoint { dir } => {
            let report = target.checkpoint(dir)?;
            print(cli, &report, || {
                render::backup("checkpoint written to", &report)
            })?;
            Ok(0)
        }
        Command::Verify => {
            let shards = target.status()?.shards.len() as u64;
            let progress = bar(shards, cli.json);
            let report = target.verify(&mut |shard| {
                progress.inc(1);
                progress.set_message(format!("shard {shard} checked"));
            })?;
            progress.finish_and_clear();
            print(cli, &report, || render::verification(&report))?;
            Ok(if report.ok() { 0 } else { EXIT_DAMAGED })
        }
        Command::Users(users) => users_command(cli, target, users),
    }
}

fn users_command(cli: &Cli, target: &Target, command: &UsersCommand) -> Result<u8> {
    match command {
        UsersCommand::Create {
            handle,
            password,
            display_name,
        } => {
            let generated = password.is_none();
            let password = password.clone().unwrap_or_else(random_password);
            let account = target.create_user(NewUser {
                handle: handle.trim_start_matches('@').to_string(),
                password: password.clone(),
                display_name: display_name.clone(),
                email: None,
            })?;
            let shown = serde_json::json!({
                "account": account,
                "password": generated.then_some(&password),
            });
            print(cli, &shown, || {
                let mut out = render::account(&account);
                if generated {
                    out.push_str(&format!("password: {password}\n"));
                }
                out
            })?;
        }
        UsersCommand::Show { user } => {
            let account = target.user(user)?;
            print(cli, &account, || render::account(&account))?;
        }
        UsersCommand::Suspend { user } | UsersCommand::Unsuspend { user } => {
            let suspend = matches!(command, UsersCommand::Suspend { .. });
            let account = target.set_suspended(user, suspend)?;
            print(cli, &account, || render::account(&account))?;
        }
        UsersCommand::ResetPassword { user, password } => {
            let generated = password.is_none();
            let password = password.clone().unwrap_or_else(random_password);
            let reset = target.reset_password(user, &password)?;
            let shown = serde_json::json!({
                "revoked_tokens": reset.revoked_tokens,
                "password": generated.then_some(&password),
            });
            print(cli, &shown, || {
                let mut out = format!(
                    "password reset; {} session(s) revoked\n",
                    reset.revoked_tokens
                );
                if generated {
                    out.push_str(&format!("password: {password}\n"));
                }
                out
            })?;
        }
        UsersCommand::Token { user } => {
            let minted = target.mint_token(user)?;
            print(cli, &minted, || format!("{}\n", minted.token))?;
        }
    }
    Ok(0)
}
