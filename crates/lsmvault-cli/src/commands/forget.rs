//! `lsmvault forget`: removes snapshots, named by id or chosen by a
//! retention policy, and with `--prune` prunes afterwards.
//!
//! With `--json` the forget report is printed alone, or with `--prune` as
//! `{"forget": ..., "prune": ...}`.

use std::process::ExitCode;

use clap::Args;
use lsmvault::ops::forget::retention::{parse_duration, GroupBy, RetentionPolicy, SnapshotFilter};
use lsmvault::{Error, ForgetOptions, ForgetReport, PruneOptions, Repository, SnapshotKind};

use super::{prune, Context};
use crate::filter::FilterArgs;
use crate::output::{print_json, short_id, table_time, to_json, Output};

#[derive(Args)]
pub struct ForgetArgs {
    /// Snapshots to remove (ids or unique prefixes) instead of a policy.
    snapshots: Vec<String>,
    #[arg(long, value_name = "N")]
    keep_last: Option<u32>,
    #[arg(long, value_name = "N")]
    keep_hourly: Option<u32>,
    #[arg(long, value_name = "N")]
    keep_daily: Option<u32>,
    #[arg(long, value_name = "N")]
    keep_weekly: Option<u32>,
    #[arg(long, value_name = "N")]
    keep_monthly: Option<u32>,
    #[arg(long, value_name = "N")]
    keep_yearly: Option<u32>,
    /// Keep everything within this span of the newest snapshot (e.g. 30d, 1y6m, 12h).
    #[arg(long, value_name = "DURATION")]
    keep_within: Option<String>,
    /// Keep snapshots with this tag (repeatable).
    #[arg(long, value_name = "TAG")]
    keep_tag: Vec<String>,
    #[command(flatten)]
    filter: FilterArgs,
    /// Only consider snapshots of this kind: full, incremental or differential.
    #[arg(long)]
    kind: Option<String>,
    /// Group snapshots by: database (default: the database's identity, so
    /// dated checkpoint directories of one database are one group; host and
    /// source for snapshots without one), host, source, host,source, or none.
    #[arg(long, default_value = "database")]
    group_by: String,
    /// Report only; remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Allow the policy to remove every snapshot of a group.
    #[arg(long)]
    allow_remove_all: bool,
    /// Run prune afterwards.
    #[arg(long)]
    prune: bool,
}

impl ForgetArgs {
    /// The retention policy, filter and grouping the flags describe.
    fn policy_options(&self) -> Result<ForgetOptions, Error> {
        let kind = match self.kind.as_deref() {
            None => None,
            Some("full") => Some(SnapshotKind::Full),
            Some("incremental") => Some(SnapshotKind::Incremental),
            Some("differential") => Some(SnapshotKind::Differential),
            Some(other) => {
                return Err(Error::InvalidArgument(format!(
                    "--kind \"{other}\": expected full, incremental or differential"
                )))
            }
        };
        Ok(ForgetOptions {
            policy: RetentionPolicy {
                keep_last: self.keep_last,
                keep_hourly: self.keep_hourly,
                keep_daily: self.keep_daily,
                keep_weekly: self.keep_weekly,
                keep_monthly: self.keep_monthly,
                keep_yearly: self.keep_yearly,
                keep_within: self
                    .keep_within
                    .as_deref()
                    .map(parse_duration)
                    .transpose()?,
                keep_tags: self.keep_tag.clone(),
            },
            filter: SnapshotFilter {
                kind,
                ..self.filter.filter()
            },
            group_by: GroupBy::parse(&self.group_by).map_err(|_| {
                Error::InvalidArgument(format!(
                    "--group-by \"{}\": expected database, host, source (comma-separated), or none",
                    self.group_by
                ))
            })?,
            dry_run: self.dry_run,
            allow_remove_all: self.allow_remove_all,
        })
    }
}

pub fn run(context: &Context, args: &ForgetArgs) -> Result<ExitCode, Error> {
    let repository = context.open_repository()?;
    let output = context.output();
    let forgotten = if args.snapshots.is_empty() {
        forget_by_policy(&repository, args, output)?
    } else {
        forget_by_id(&repository, args, output)?
    };
    if args.prune && !args.dry_run {
        let options = PruneOptions::default();
        let pruned = prune::prune(&repository, &options, output, context.progress())?;
        if output.is_json() {
            print_json(&serde_json::json!({ "forget": forgotten, "prune": pruned }))?;
        }
    } else if output.is_json() {
        print_json(&forgotten)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Forgets the snapshots named on the command line; prints text unless
/// `output` is JSON; returns the report as JSON.
fn forget_by_id(
    repository: &Repository,
    args: &ForgetArgs,
    output: Output,
) -> Result<serde_json::Value, Error> {
    let removed = repository.forget_snapshots(&args.snapshots, args.dry_run)?;
    if output.prints_summary() || (args.dry_run && !output.is_json()) {
        let action = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        for id in &removed {
            println!("{action} {}", short_id(id));
        }
    }
    Ok(serde_json::json!({ "removed": removed, "dry_run": args.dry_run }))
}

/// Forgets what the retention policy does not keep; prints text unless
/// `output` is JSON; returns the report as JSON.
fn forget_by_policy(
    repository: &Repository,
    args: &ForgetArgs,
    output: Output,
) -> Result<serde_json::Value, Error> {
    let options = args.policy_options()?;
    if options.policy.is_empty() {
        // Said here, where the flags are known: the library only knows the policy is empty.
        return Err(Error::InvalidArgument(
            "no keep rule given: pass --keep-last, --keep-daily, --keep-within, ... (or snapshot ids)"
                .into(),
        ));
    }
    let report = repository.forget(&options)?;
    let value = to_json(&report)?;
    if output.prints_summary() || (args.dry_run && !output.is_json()) {
        print_decisions(&report);
    }
    crate::output::warn_damaged(&report.damaged);
    Ok(value)
}

fn print_decisions(report: &ForgetReport) {
    for group in &report.groups {
        println!("{}:", group.group);
        for decision in &group.snapshots {
            let action = match (decision.keep, report.dry_run) {
                (true, _) => format!("keep   ({})", decision.reasons.join(", ")),
                (false, true) => "would remove".to_string(),
                (false, false) => "remove".to_string(),
            };
            println!(
                "  {} {}  {}",
                short_id(&decision.id),
                table_time(decision.time),
                action
            );
        }
    }
    println!(
        "{} snapshot(s) {}",
        report.removed.len(),
        if report.dry_run {
            "would be removed"
        } else {
            "removed"
        }
    );
}
