//! `tower-jwt-revoke`: operate a tower-jwt-revoke blocklist from a terminal.
//!
//! Every command goes through the library's own store (`RedisStore`) and revoker, so
//! it writes what the services read, in the key schema they use, with the change-feed
//! events their mirrors follow. See `tower-jwt-revoke --help`.

mod args;
mod commands;
mod error;
mod keys;
mod output;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

use crate::args::Cli;
use crate::error::{Exit, Failure};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage(&error),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return report(&Failure::new(Exit::Store, format!("cannot start: {error}"))),
    };
    match runtime.block_on(commands::run(&cli.global, cli.command)) {
        Ok(exit) => exit.into(),
        Err(failure) => report(&failure),
    }
}

/// Help and version as clap prints them; a usage error as one line.
fn usage(error: &clap::Error) -> ExitCode {
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = error.print();
        return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
    }
    // The message and what it lists (the missing arguments), up to the first blank
    // line; then the tips and usage clap adds are left to `--help`.
    let rendered = error.render().to_string();
    let message: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .skip_while(|line| line.is_empty())
        .take_while(|line| !line.is_empty())
        .collect();
    let message = message.join(" ");
    let first = message.strip_prefix("error: ").unwrap_or(&message);
    report(&Failure::usage(format!("{first} (see --help)")))
}

/// The failure on one line of stderr, and its exit code.
fn report(failure: &Failure) -> ExitCode {
    if !failure.message.is_empty() {
        let _ = writeln!(std::io::stderr(), "error: {failure}");
    }
    failure.exit.into()
}
