//! The archived WAL of the copied snapshots' databases: segment records and
//! restore points the destination lacks, after the blobs they name.
//!
//! A record counts as present in the destination when one there describes
//! the same segment version (database, segment number, size, file name,
//! archive time and host) or the same restore point (name, database,
//! sequence, time, host): with different ids its digest and chunk ids
//! differ, so they are not compared. Source records that cannot be read are
//! left out and named in the report's warnings; a point-in-time restore in
//! the destination then sees the gap they leave, as it would in the source.

use std::collections::HashSet;

use crate::error::Result;
use crate::format::wal_object::WalObject;
use crate::progress::Progress;
use crate::repo::commit::CommitCheck;
use crate::repo::lock::LockGuard;
use crate::repo::PackWriter;

use super::blobs::Transfer;
use super::{CopyOptions, CopyReport};

/// How the destination's writes are checked before they are committed
/// (a snapshot, or WAL records): the check and the lock it confirms.
pub(super) struct Commit<'c> {
    pub check: &'c mut CommitCheck,
    pub lock: &'c LockGuard,
}

/// Copies the WAL records of `databases` the destination lacks.
pub(super) fn copy_wal(
    transfer: &mut Transfer<'_>,
    databases: &HashSet<String>,
    commit: Commit<'_>,
    options: &CopyOptions,
    report: &mut CopyReport,
    progress: &dyn Progress,
) -> Result<()> {
    let destination = transfer.destination;
    let (objects, damaged) = transfer.source.wal_objects_checked()?;
    report.warnings.extend(damaged.into_iter().map(|object| {
        format!(
            "WAL record {} of the source was not copied: {}",
            object.name, object.reason
        )
    }));
    let known: HashSet<String> = destination
        .wal_objects_checked()?
        .0
        .iter()
        .map(|(_, object)| presence_key(object))
        .collect();
    let wanted: Vec<WalObject> = objects
        .into_iter()
        .map(|(_, object)| object)
        .filter(|object| databases.contains(database_id(object)))
        .filter(|object| !known.contains(&presence_key(object)))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let writer = PackWriter::with_known(destination, transfer.present())?;
    let mut translated = Vec::with_capacity(wanted.len());
    for object in wanted {
        options.interrupt.check("copying the WAL archive")?;
        match object {
            WalObject::Segment(record) if transfer.same_ids() => {
                transfer.copy_chunks(&writer, &record.chunks, &options.interrupt, progress)?;
                translated.push(WalObject::Segment(record));
            }
            WalObject::Segment(mut record) => {
                let content = transfer.translate_content(
                    &writer,
                    &record.chunks,
                    progress,
                    |size, digest| record.check_content(size, digest),
                )?;
                record.digest = content.digest;
                record.chunks = content.chunks;
                translated.push(WalObject::Segment(record));
            }
            point @ WalObject::RestorePoint(_) => translated.push(point),
        }
    }
    let summary = writer.finish()?;
    destination.protect_packs(&summary.published)?;
    let index_files = destination.write_index(&summary.locations)?;
    commit.check.wrote(&summary, &index_files);
    transfer.committed(&summary.locations);
    report.add_written(&summary);
    commit.check.confirm(destination, commit.lock)?;
    for object in &translated {
        destination.write_wal_object(object)?;
        report.wal_records_copied += 1;
    }
    Ok(())
}

fn database_id(object: &WalObject) -> &str {
    match object {
        WalObject::Segment(record) => &record.database_id,
        WalObject::RestorePoint(point) => &point.database_id,
    }
}

/// What identifies a record whatever the ids of its repository.
fn presence_key(object: &WalObject) -> String {
    match object {
        WalObject::Segment(record) => format!(
            "segment\0{}\0{}\0{}\0{}\0{}\0{}",
            record.database_id,
            record.segment,
            record.size,
            record.file_name,
            record.archived_at,
            record.host
        ),
        WalObject::RestorePoint(point) => format!(
            "point\0{}\0{}\0{}\0{}\0{}",
            point.name, point.database_id, point.sequence, point.time, point.host
        ),
    }
}
