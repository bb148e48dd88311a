//! `lsmvault dump` (one file of a snapshot to stdout, streamed and checked)
//! and `lsmvault cat` (one repository object, decoded, for debugging).
//!
//! Both write what was asked for to stdout and nothing else, so that the
//! output can be piped; a failure after part of a dump was written still
//! exits non-zero, with the error on stderr naming the file.

use std::io::Write;
use std::process::ExitCode;

use clap::builder::PossibleValuesParser;
use clap::Args;
use lsmvault::ops::cat::{CatKind, CatOutput};
use lsmvault::Error;

use super::Context;
use crate::output::print_json;

#[derive(Args)]
pub struct DumpArgs {
    /// Snapshot id, unique id prefix, `latest` or `latest:TAG`.
    snapshot: String,
    /// Path of a regular file in the snapshot (as `ls` shows it; any bytes
    /// a file name can hold).
    path: std::path::PathBuf,
}

pub fn dump(context: &Context, args: &DumpArgs) -> Result<ExitCode, Error> {
    let repository = context.open_repository()?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    repository.dump(&args.snapshot, &args.path, &mut out)?;
    out.flush()
        .map_err(|error| Error::io("writing to stdout".to_string(), error))?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct CatArgs {
    /// What to show: `config`, or the kind of the object ID names (a pack
    /// shows its header, a blob its raw content, the others their JSON).
    #[arg(value_parser = PossibleValuesParser::new(CatKind::ALL.map(CatKind::name)))]
    kind: String,
    /// The object's id or a unique prefix (a snapshot also takes `latest`);
    /// not for `config`.
    #[arg(required_if_eq_any = [("kind", "snapshot"), ("kind", "index"), ("kind", "tree"),
        ("kind", "blob"), ("kind", "pack"), ("kind", "key"), ("kind", "lock"), ("kind", "wal")])]
    id: Option<String>,
}

pub fn cat(context: &Context, args: &CatArgs) -> Result<ExitCode, Error> {
    let kind: CatKind = args.kind.parse()?;
    if !kind.takes_id() && args.id.is_some() {
        return Err(Error::InvalidArgument(
            "`cat config` takes no id (a repository has one config)".into(),
        ));
    }
    let repository = context.open_repository()?;
    match repository.cat(kind, args.id.as_deref().unwrap_or(""))? {
        CatOutput::Json(value) => print_json(&value)?,
        CatOutput::Raw(bytes) => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&bytes)
                .and_then(|()| stdout.flush())
                .map_err(|error| Error::io("writing to stdout".to_string(), error))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
