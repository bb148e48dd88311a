//! `lsmvault forget`: removes snapshots, named by id or chosen by a
//! retention policy, and with `--prune` prunes afterwards.
//!
//! With `--json` the forget report is printed alone, or with `--prune` as
//! `{"forget": ..., "prune": ...}`.

use std::process::ExitCode;

mod wal_report;

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
    /// Keep the WAL archive only as far back as point-in-time recovery must
    /// reach: to any instant within this span of the newest archived write
    /// (e.g. 7d). Alone, it removes WAL records and no snapshot.
    #[arg(long, value_name = "DURATION")]
    keep_pitr: Option<String>,
    /// Keep snapshots with this tag (repeatable).
    #[arg(long, value_name = "TAG")]
    keep_tag: Vec<String>,
    #[command(flatten)]
    filter: FilterArgs,
    /// Only consider snapshots of this kind: full, incremental or differential.
    #[arg(long)]
    kind: Option<String>,
    /// Group snapshots by: database,host (default: the database's identity
    /// on each host, so dated checkpoint directories of one database are one
    /// group, and a clone restored on another host keeps its own; host and
    /// source for snapshots without an identity), database, host, source,
    /// host,source, or none.
    #[arg(long, default_value = "database,host")]
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
            keep_pitr: self.keep_pitr()?,
        })
    }

    fn keep_pitr(&self) -> Result<Option<std::time::Duration>, Error> {
        self.keep_pitr
            .as_deref()
            .map(|text| {
                parse_duration(text).map_err(|error| match error {
                    Error::InvalidArgument(reason) => {
                        Error::InvalidArgument(format!("--keep-pitr: {reason}"))
                    }
                    other => other,
                })
            })
            .transpose()
    }
}

pub fn run(context: &Context, args: &ForgetArgs) -> Result<ExitCode, Error> {
    if let Some(warning) = args.filter.repeated_tag_warning() {
        eprintln!("{warning}");
    }
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
    let options = args.policy_options()?;
    if options.policy != RetentionPolicy::default() {
        return Err(Error::InvalidArgument(
            "snapshot ids and --keep-* flags exclude each other: name the snapshots to \
             remove, or give a policy"
                .into(),
        ));
    }
    // `latest` resolves among the snapshots the filter flags select, as
    // `ls latest --host A` does; an id or prefix names one snapshot anyway,
    // and goes to the library as it is (it may name a damaged snapshot
    // file, which forget must be able to remove).
    let selectors = args
        .snapshots
        .iter()
        .map(|selector| {
            if options.filter.chooses(selector) {
                repository
                    .find_snapshot_filtered(selector, &options.filter)
                    .map(|entry| entry.id.to_hex())
            } else {
                Ok(selector.clone())
            }
        })
        .collect::<Result<Vec<String>, Error>>()?;
    let report = repository.forget_ids(&selectors, args.dry_run, options.keep_pitr)?;
    if output.prints_summary() || (args.dry_run && !output.is_json()) {
        let action = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        for id in &report.removed {
            outln!("{action} {}", short_id(id));
        }
        wal_report::print(&report.wal, args.dry_run);
    }
    wal_report::warn_damaged(&report.wal);
    to_json(&report)
}

/// Forgets what the retention policy does not keep; prints text unless
/// `output` is JSON; returns the report as JSON.
fn forget_by_policy(
    repository: &Repository,
    args: &ForgetArgs,
    output: Output,
) -> Result<serde_json::Value, Error> {
    let options = args.policy_options()?;
    if options.policy.is_empty() && options.keep_pitr.is_none() {
        // Said here, where the flags are known: the library only knows the policy is empty.
        return Err(Error::InvalidArgument(
            "no keep rule given: pass --keep-last, --keep-daily, --keep-within, ... (or snapshot ids, or --keep-pitr alone to trim only the WAL archive)"
                .into(),
        ));
    }
    let report = repository.forget(&options)?;
    let value = to_json(&report)?;
    if output.prints_summary() || (args.dry_run && !output.is_json()) {
        if !report.groups.is_empty() {
            print_decisions(&report);
        }
        wal_report::print(&report.wal, report.dry_run);
    }
    crate::output::warn_damaged(&report.damaged);
    wal_report::warn_damaged(&report.wal);
    Ok(value)
}

fn print_decisions(report: &ForgetReport) {
    for group in &report.groups {
        outln!("{}:", group.group);
        for decision in &group.snapshots {
            let action = match (decision.keep, report.dry_run) {
                (true, _) => format!("keep   ({})", decision.reasons.join(", ")),
                (false, true) => "would remove".to_string(),
                (false, false) => "remove".to_string(),
            };
            outln!(
                "  {} {}  {}",
                short_id(&decision.id),
                table_time(decision.time),
                action
            );
        }
    }
    outln!(
        "{} snapshot(s) {}",
        report.removed.len(),
        if report.dry_run {
            "would be removed"
        } else {
            "removed"
        }
    );
}
