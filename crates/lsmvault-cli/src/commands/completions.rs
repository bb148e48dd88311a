//! `lsmvault completions SHELL` (a completion script on stdout, from
//! clap_complete) and `lsmvault man --out DIR` (one manual page per command,
//! from clap_mangen). Both are generated from the parser itself, so they
//! never disagree with the flags the binary accepts; neither needs a
//! repository.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory};
use clap_complete::Shell;
use lsmvault::Error;

use super::Context;
use crate::cli::Cli;

#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell to write a completion script for.
    #[arg(value_enum)]
    shell: Shell,
}

pub fn completions(args: &CompletionsArgs) -> Result<ExitCode, Error> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "lsmvault", &mut script);
    crate::output::write_stdout(&script);
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct ManArgs {
    /// Directory to write the pages into (created if missing): lsmvault.1,
    /// lsmvault-backup.1, lsmvault-key-add.1, ...
    #[arg(long)]
    out: PathBuf,
}

pub fn man(context: &Context, args: &ManArgs) -> Result<ExitCode, Error> {
    std::fs::create_dir_all(&args.out)
        .map_err(|error| Error::io(format!("creating {}", args.out.display()), error))?;
    let mut written = Vec::new();
    write_pages(Cli::command(), &args.out, &mut written)?;
    context.output().summary(&written, |written| {
        outln!(
            "wrote {} manual pages to {} (e.g. `man -l {}`)",
            written.len(),
            args.out.display(),
            args.out.join("lsmvault.1").display()
        );
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Writes the page of `command` and of each of its subcommands (named
/// `lsmvault-SUB[-SUBSUB].1` by clap once the parent is built).
fn write_pages(
    mut command: clap::Command,
    out: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), Error> {
    command.build();
    for sub in command.get_subcommands() {
        if sub.get_name() != "help" && !sub.is_hide_set() {
            write_pages(sub.clone(), out, written)?;
        }
    }
    let page = clap_mangen::Man::new(command);
    let path = page.generate_to(out).map_err(|error| {
        Error::io(
            format!("writing a manual page into {}", out.display()),
            error,
        )
    })?;
    written.push(path);
    Ok(())
}
