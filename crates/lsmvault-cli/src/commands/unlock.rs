//! `lsmvault unlock`: removes the stale locks crashed commands left behind
//! and corrupt lock objects, naming those (every lock with `--remove-all`).

use std::process::ExitCode;

use clap::Args;
use lsmvault::Error;

use super::Context;

#[derive(Args)]
pub struct UnlockArgs {
    /// Remove every lock, also live ones.
    #[arg(long)]
    remove_all: bool,
}

pub fn run(context: &Context, args: &UnlockArgs) -> Result<ExitCode, Error> {
    // Removing locks acts on nothing the config says, so an encrypted
    // version 2 repository is opened too: a migrate killed on another host
    // must not leave a lock nobody can remove until it goes stale.
    let repository = context.open_repository_for_migration()?;
    let removed = repository.remove_locks(args.remove_all)?;
    let count = removed.removed;
    let corrupt = &removed.corrupt;
    context.output().summary(
        &serde_json::json!({ "removed": count, "corrupt": corrupt }),
        |_| {
            for name in corrupt {
                outln!("removed corrupt lock {name}");
            }
            outln!("removed {count} lock(s)");
        },
    )?;
    Ok(ExitCode::SUCCESS)
}
