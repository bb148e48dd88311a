//! The `lsmvault` command: a thin binary over the `lsmvault` library.
//!
//! `main` parses the command line, tunes the allocator, hands the command to
//! its module in [`commands`], and turns a failure into a message, a hint and
//! an exit code ([`exit`]). Everything a command prints is in its module;
//! how things are printed is in [`output`].

#[macro_use]
mod output;
mod allocator;
mod cli;
mod commands;
mod exit;
mod filter;
mod password;
mod progress;
mod signals;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::commands::Context;

fn main() -> ExitCode {
    let cli = Cli::parse();
    allocator::tune();
    let context = Context::new(&cli.global);
    let mut outcome = run(&cli, &context);
    if outcome.as_ref().is_err_and(is_cache_outdated) {
        // The metadata cache described a repository deleted and made anew
        // at this location; it was dropped before anything was written, so
        // the command runs again from the storage.
        eprintln!("note: the repository was re-created at this location since the metadata cache was filled; the cache was dropped and the command runs again");
        outcome = run(&cli, &context);
    }
    context.report_requests();
    outcome.unwrap_or_else(|error| {
        if let lsmvault::Error::Io { source, .. } = &error {
            // `dump … | head -c 10`: the reader had what it wanted.
            if source.kind() == std::io::ErrorKind::BrokenPipe {
                return ExitCode::from(output::CLOSED_STDOUT_EXIT as u8);
            }
        }
        let code = exit::report_failure(&error, cli.global.json);
        signals::exit_code(&error).unwrap_or(code)
    })
}

fn is_cache_outdated(error: &lsmvault::Error) -> bool {
    matches!(error, lsmvault::Error::Backend(backend) if backend.is_cache_outdated())
}

/// Runs the command.
fn run(cli: &Cli, context: &Context) -> Result<ExitCode, lsmvault::Error> {
    match &cli.command {
        Command::Init(args) => commands::init::run(context, args),
        Command::Key(command) => commands::key::run(context, command),
        Command::Backup(args) => commands::backup::run(context, args),
        Command::Snapshots(args) => commands::snapshots::run(context, args),
        Command::Ls(args) => commands::ls::run(context, args),
        Command::Restore(args) => commands::restore::run(context, args),
        Command::Checkpoint(args) => commands::checkpoint::run(context, args),
        Command::Wal(command) => commands::wal::run(context, command),
        Command::Cluster(command) => commands::cluster::run(context, command),
        Command::Tag(args) => commands::tag::run(context, args),
        Command::Forget(args) => commands::forget::run(context, args),
        Command::Prune(args) => commands::prune::run(context, args),
        Command::Repair(command) => commands::repair::run(context, command),
        Command::Stats(args) => commands::stats::run(context, args),
        Command::Diff(args) => commands::diff::run(context, args),
        Command::Copy(args) => commands::copy::run(context, args),
        Command::Migrate => commands::migrate::run(context),
        Command::Unlock(args) => commands::unlock::run(context, args),
        Command::Verify(args) => commands::verify::run(context, args),
        Command::Find(args) => commands::find::run(context, args),
        Command::Dump(args) => commands::dump::dump(context, args),
        Command::Cat(args) => commands::dump::cat(context, args),
        Command::Completions(args) => commands::completions::completions(args),
        Command::Man(args) => commands::completions::man(context, args),
    }
}
