//! The WAL part of `forget`'s text output: per database, what was (or would
//! be) removed from the archive and how far back recovery now reaches.

use lsmvault::ops::forget::wal_retention::{DatabaseWalRetention, WalRetentionReport};

use crate::output::table_time;

/// Prints the WAL retention report (nothing when there is no archive).
pub fn print(report: &WalRetentionReport, dry_run: bool) {
    if let Some(reason) = &report.skipped {
        outln!("WAL archive: nothing removed: {reason}");
        return;
    }
    for database in &report.databases {
        print_database(database, dry_run);
    }
}

fn print_database(database: &DatabaseWalRetention, dry_run: bool) {
    outln!("WAL archive of database {}:", database.database_id);
    let (Some(sequence), Some(time)) = (database.earliest_sequence, database.earliest_time) else {
        outln!("  kept whole: {}", database.reason);
        return;
    };
    let verb = if dry_run { "would remove" } else { "removed" };
    outln!(
        "  {verb} {} segment(s) ({} version(s), {} bytes of WAL) and {} restore point(s)",
        database.segments_removed.len(),
        database.versions_removed,
        database.bytes_removed,
        database.restore_points_removed.len()
    );
    if !database.segments_removed.is_empty() {
        outln!("  segments: {}", database.segments_removed.join(", "));
    }
    if !database.restore_points_removed.is_empty() {
        outln!(
            "  restore points: {}",
            database.restore_points_removed.join(", ")
        );
    }
    outln!(
        "  earliest recoverable: sequence {sequence} ({}; {})",
        table_time(time),
        database.reason
    );
}

/// Warns about WAL objects that could not be read: never judged, kept.
pub fn warn_damaged(report: &WalRetentionReport) {
    for object in &report.damaged {
        eprintln!(
            "warning: WAL object {} could not be read and was kept: {} (`lsmvault verify` names every damaged object)",
            object.name, object.reason
        );
    }
}
