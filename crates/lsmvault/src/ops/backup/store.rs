//! Backup's storing: read the files the scan could not reuse, in parallel,
//! chunk and hash them into the [`PackWriter`] (which publishes full packs
//! from its own thread), then encode the trees bottom-up into packs too.
//!
//! A file that changes while it is read is read again, up to
//! [`CHANGED_FILE_RETRIES`] times; a file that cannot be read is left out of
//! the snapshot with a warning. Only repository failures abort the backup.

use std::collections::HashMap;
use std::fs::File;
use std::sync::Mutex;

use rayon::prelude::*;

use super::scan::{metadata_of, FileJob, ScannedDirectory, ScannedNode};
use super::Tally;
use crate::codec::chunker::CutFinder;
use crate::error::Result;
use crate::format::pack::BlobKind;
use crate::format::tree::{Entry, EntryKind, Metadata, Tree};
use crate::id::Id;
use crate::interrupt::Interrupt;
use crate::progress::Progress;
use crate::repo::store::{store_stream, StoredContent};
use crate::repo::PackWriter;

/// How often a file that keeps changing while read is retried.
const CHANGED_FILE_RETRIES: usize = 3;

/// What reading one file produced.
pub(super) struct FileContent {
    kind: EntryKind,
    /// Metadata as of the read (the file may have changed since the scan).
    metadata: Metadata,
}

impl FileContent {
    fn kind_size(&self) -> u64 {
        match &self.kind {
            EntryKind::File { size, .. } => *size,
            _ => 0,
        }
    }
}

/// Reads every job, largest first (so one big file does not start last and
/// run alone), counting read files and unreadable ones into `tally`.
/// Returns each job's content by job index (`None`: left out).
pub(super) fn read_files(
    jobs: &[FileJob],
    finder: &CutFinder,
    writer: &PackWriter<'_>,
    interrupt: &Interrupt,
    progress: &dyn Progress,
    tally: &mut Tally,
) -> Result<Vec<Option<FileContent>>> {
    let total: u64 = jobs.iter().map(|job| job.size).sum();
    progress.start("reading", total);
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&job| std::cmp::Reverse(jobs[job].size));
    let read_warnings = Mutex::new(Vec::new());
    let mut contents: Vec<Option<FileContent>> = (0..jobs.len()).map(|_| None).collect();
    let results: Vec<(usize, Option<FileContent>)> = order
        .par_iter()
        .map(|&job| {
            interrupt.check("reading the source")?;
            let outcome = read_file(&jobs[job], finder, writer, progress)?;
            let record = |warning| {
                read_warnings
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .push(warning)
            };
            Ok(match outcome {
                Ok((content, warning)) => {
                    if let Some(warning) = warning {
                        record(warning);
                    }
                    (job, Some(content))
                }
                Err(warning) => {
                    record(warning);
                    (job, None)
                }
            })
        })
        .collect::<Result<_>>()?;
    progress.finish();
    for (job, content) in results {
        match content {
            Some(content) => {
                tally.stats.files += 1;
                tally.stats.bytes_total += content.kind_size();
                tally.stats.bytes_read += content.kind_size();
                contents[job] = Some(content);
            }
            None => tally.unreadable += 1,
        }
    }
    // In the order the workers recorded them.
    for warning in read_warnings
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
    {
        tally.warn(warning);
    }
    Ok(contents)
}

/// Reads, chunks and stores one file. `Ok(Err(warning))` means the file could
/// not be read (it is left out of the snapshot); `Err` is a repository failure.
fn read_file(
    job: &FileJob,
    finder: &CutFinder,
    writer: &PackWriter<'_>,
    progress: &dyn Progress,
) -> Result<std::result::Result<(FileContent, Option<String>), String>> {
    let mut changed_warning = None;
    for attempt in 0..=CHANGED_FILE_RETRIES {
        let file = match File::open(&job.path) {
            Ok(file) => file,
            Err(error) => return Ok(Err(format!("{}: {error}", job.path.display()))),
        };
        let before = match file.metadata() {
            Ok(stat) => stat,
            Err(error) => return Ok(Err(format!("{}: {error}", job.path.display()))),
        };
        let expected_size = before.len();
        let StoredContent {
            chunks,
            digest,
            size: read_bytes,
        } = match store_stream(&file, expected_size, finder, writer, progress)? {
            Ok(stored) => stored,
            Err(error) => return Ok(Err(format!("{}: {error}", job.path.display()))),
        };
        let after = match file.metadata() {
            Ok(stat) => stat,
            Err(error) => return Ok(Err(format!("{}: {error}", job.path.display()))),
        };
        let before_metadata = metadata_of(&before);
        let after_metadata = metadata_of(&after);
        let stable = read_bytes == expected_size
            && after.len() == expected_size
            && before_metadata.mtime_ns == after_metadata.mtime_ns;
        // No digest: it grew past one chunk while read; read it again.
        match digest {
            Some(digest) if stable || attempt == CHANGED_FILE_RETRIES => {
                if !stable {
                    changed_warning = Some(format!(
                        "{}: changed while being read ({} attempts); stored the last read",
                        job.path.display(),
                        attempt + 1
                    ));
                }
                return Ok(Ok((
                    FileContent {
                        kind: EntryKind::File {
                            size: read_bytes,
                            digest,
                            chunks,
                        },
                        metadata: after_metadata,
                    },
                    changed_warning,
                )));
            }
            _ => continue,
        }
    }
    Ok(Err(format!(
        "{}: kept changing while being read",
        job.path.display()
    )))
}

/// The content recorded for the first member of each hard-link group
/// (device, inode) met while building the trees: (size, digest).
pub(super) type LinkGroups = HashMap<(u64, u64), (u64, Id)>;

/// Keeps a hard-link group only of members that recorded the same content.
/// Each path of a group is read on its own, so a file that changed between
/// two reads records two contents under one inode; restore would link the
/// second path to the first and give it content other than its digest. A
/// member whose content differs from the group's first is recorded with one
/// link, so restore writes it from its own chunks.
fn ungroup_if_different(kind: &EntryKind, metadata: &mut Metadata, groups: &mut LinkGroups) {
    let EntryKind::File { size, digest, .. } = kind else {
        return;
    };
    if metadata.links <= 1 {
        return;
    }
    let first = *groups
        .entry((metadata.device, metadata.inode))
        .or_insert((*size, *digest));
    if first != (*size, *digest) {
        metadata.links = 1;
    }
}

/// Encodes trees bottom-up, storing new ones; returns the root tree id.
pub(super) fn build_tree(
    directory: ScannedDirectory,
    contents: &mut [Option<FileContent>],
    groups: &mut LinkGroups,
    writer: &PackWriter<'_>,
) -> Result<Id> {
    let mut tree = Tree::default();
    for scanned in directory.entries {
        let (kind, mut metadata) = match scanned.node {
            ScannedNode::Directory(child) => (
                EntryKind::Directory {
                    subtree: build_tree(child, contents, groups, writer)?,
                },
                scanned.metadata,
            ),
            ScannedNode::Symlink(target) => (EntryKind::Symlink { target }, scanned.metadata),
            ScannedNode::Reused(kind) => (kind, scanned.metadata),
            ScannedNode::Read(job) => match contents.get_mut(job).and_then(Option::take) {
                Some(content) => (content.kind, content.metadata),
                // Unreadable: already counted and warned about.
                None => continue,
            },
        };
        ungroup_if_different(&kind, &mut metadata, groups);
        tree.entries.push(Entry {
            name: scanned.name,
            kind,
            metadata,
        });
    }
    let bytes = tree.encode();
    let id = writer.keys().blob_id(&bytes);
    writer.add(id, BlobKind::Tree, &bytes)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: u64, digest: u8) -> EntryKind {
        EntryKind::File {
            size,
            digest: Id([digest; 32]),
            chunks: vec![Id([digest; 32])],
        }
    }

    #[test]
    fn hard_link_that_recorded_other_content_is_not_grouped() {
        let mut groups = LinkGroups::new();
        let linked = Metadata {
            device: 1,
            inode: 7,
            links: 2,
            ..Metadata::default()
        };
        let mut first = linked;
        ungroup_if_different(&file(10, 1), &mut first, &mut groups);
        assert_eq!(first.links, 2);
        let mut same = linked;
        ungroup_if_different(&file(10, 1), &mut same, &mut groups);
        assert_eq!(same.links, 2);
        // The file grew between the two reads: another content, one link.
        let mut grown = linked;
        ungroup_if_different(&file(20, 2), &mut grown, &mut groups);
        assert_eq!(grown.links, 1);
    }
}
