//! Backup's report of what healing wrote: blobs the index listed that
//! were stored again because their pack was missing or damaged. The checks
//! themselves ([`StoredBlobs`], [`CommitCheck`](crate::repo::commit::CommitCheck))
//! live in `repo::commit`, shared with `copy`.

use crate::format::index::BlobLocation;
use crate::repo::commit::StoredBlobs;

use super::Tally;

/// How many of the blobs just written the index already had (written
/// again because their pack was missing or damaged); warns when any.
pub(super) fn report_rewritten(
    stored: &StoredBlobs,
    written: &[BlobLocation],
    tally: &mut Tally,
) -> u64 {
    let rewritten = written
        .iter()
        .filter(|location| stored.indexed.contains(&location.entry.id))
        .count() as u64;
    if rewritten > 0 {
        tally.warn(format!(
            "{rewritten} blob(s) the index listed were written again because their pack was missing or damaged ({} indexed blob(s) had no pack)",
            stored.missing
        ));
    }
    rewritten
}
