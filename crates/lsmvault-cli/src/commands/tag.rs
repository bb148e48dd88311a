//! `lsmvault tag`: names the current point of a live database (archiving
//! its WAL now) so that `restore --tag` can return to it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use lsmvault::ops::wal::ArchiveOptions;
use lsmvault::Error;

use super::Context;

#[derive(Args)]
pub struct TagArgs {
    /// The restore point's name.
    name: String,
    /// The live database directory.
    database: PathBuf,
    /// The database id, for databases without an IDENTITY file.
    #[arg(long)]
    database_id: Option<String>,
    /// Reuse a name already taken: the new restore point wins (`restore
    /// --tag` returns to the newest point of a name).
    #[arg(long)]
    force: bool,
}

pub fn run(context: &Context, args: &TagArgs) -> Result<ExitCode, Error> {
    let repository = context.open_repository()?;
    let options = ArchiveOptions {
        database_id: args.database_id.clone(),
        ..ArchiveOptions::default()
    };
    let point =
        repository.create_restore_point(&args.name, &args.database, &options, args.force)?;
    context.output().summary(&point, |point| {
        outln!(
            "restore point \"{}\" of database {} at sequence {}",
            point.name,
            point.database_id,
            point.sequence
        );
    })?;
    Ok(ExitCode::SUCCESS)
}
