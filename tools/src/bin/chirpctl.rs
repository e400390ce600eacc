//! `chirpctl`: the admin CLI. Parsing and exit codes here; the commands are in `chirp_tools::ctl`.

use std::process::ExitCode;

use chirp_tools::ctl::{self, Cli};
use clap::Parser;

fn main() -> ExitCode {
    match ctl::run(Cli::parse()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("chirpctl: {e}");
            ExitCode::FAILURE
        }
    }
}
