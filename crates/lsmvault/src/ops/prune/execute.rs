//! Carrying out a [`PrunePlan`] in the crash-safe order of the module
//! documentation: repack (and protect the new packs and the survivors of
//! parity groups that lose members), write the new index, delete the old
//! index files, delete the packs no index names any more, then the parity
//! of the groups that lost members.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rayon::prelude::*;

use crate::backend::ObjectKind;
use crate::error::{Error, Result};
use crate::format::index::{BlobLocation, Index};
use crate::format::pack;
use crate::id::Id;
use crate::progress::Progress;
use crate::repo::lock::LockGuard;
use crate::repo::{PackWriter, Repository};

use super::plan::PrunePlan;
use super::regroup;
use super::PruneReport;

/// Executes `plan`, completing `report` with what was written and freed.
pub(super) fn execute(
    repository: &Repository,
    plan: &PrunePlan,
    lock: &LockGuard,
    progress: &dyn Progress,
    report: &mut PruneReport,
) -> Result<()> {
    // 1. Repack: the kept packs' blobs count as stored, the repacked ones do not.
    let mut kept_index = Index::new();
    let mut kept_locations: Vec<BlobLocation> = Vec::new();
    for pack in &plan.keep {
        for entry in &plan.pack_entries[pack] {
            let location = BlobLocation {
                pack: *pack,
                entry: *entry,
            };
            kept_index.insert(location);
            kept_locations.push(location);
        }
    }
    let written = repack(repository, plan, Arc::new(kept_index), progress)?;
    report.packs_written = written.packs as usize;
    repository.protect_packs(&written.published)?;
    // The packs that stay, with their sizes (from the listing, and for the
    // new packs as written).
    let live: HashMap<Id, u64> = plan
        .keep
        .iter()
        .filter_map(|pack| Some((*pack, *plan.pack_sizes.get(pack)?)))
        .chain(
            written
                .published
                .iter()
                .map(|member| (member.pack, member.length)),
        )
        .collect();
    let stale_parity = regroup::protect_survivors(repository, &live)?;

    // 2. New index: kept packs plus the new ones. Not while the lock may
    // have looked stale: by the storage's view too (a paused virtual machine
    // stops this process's clocks), see docs/maintenance.md.
    lock.ensure_lease()?;
    kept_locations.extend(written.locations.iter().copied());
    let new_index_files: HashSet<String> = repository
        .write_index(&kept_locations)?
        .into_iter()
        .map(|id| id.to_hex())
        .collect();
    report.index_files_after = new_index_files.len();

    // 3. Old index files go; 4. then the packs they alone named. A prune
    // whose lock may have looked stale (paused past the window) stops, since
    // a backup may have started beside it and reused what the plan deletes
    // (docs/maintenance.md): the storage's view before each of the two
    // steps (a pause during the index step is seen before the packs go),
    // this process's clock before each deletion.
    let old_index_files: Vec<&String> = plan
        .index_files
        .iter()
        .filter(|name| !new_index_files.contains(*name))
        .collect();
    if !old_index_files.is_empty() {
        lock.ensure_lease()?;
    }
    for name in old_index_files {
        lock.ensure_held()?;
        repository.backend().delete(ObjectKind::Index, name)?;
    }
    // A pack the new index names is never deleted, whatever it was
    // classified as: repacking is deterministic in a plaintext repository,
    // so the pack just written can carry the name of an unused or unindexed
    // pack that an earlier, killed prune wrote.
    let indexed_packs: HashSet<Id> = kept_locations
        .iter()
        .map(|location| location.pack)
        .collect();
    let indexed = |name: &String| Id::from_hex(name).is_ok_and(|id| indexed_packs.contains(&id));
    let doomed: Vec<String> = plan
        .delete
        .iter()
        .chain(&plan.repack)
        .map(Id::to_hex)
        .chain(plan.unindexed.iter().map(|(name, _)| name.clone()))
        .filter(|name| !indexed(name))
        .collect();
    if !doomed.is_empty() {
        lock.ensure_lease()?;
    }
    for name in doomed {
        lock.ensure_held()?;
        repository.backend().delete(ObjectKind::Pack, &name)?;
    }
    // 5. The parity of groups that lost members goes last: their survivors
    // were protected by new groups before any pack was deleted.
    for name in &stale_parity {
        repository.backend().delete(ObjectKind::Parity, name)?;
    }
    repository.refresh_index()?;
    report.bytes_after = repository
        .backend()
        .list(ObjectKind::Pack)?
        .iter()
        .map(|pack| pack.size)
        .sum();
    report.bytes_freed = report.bytes_before.saturating_sub(report.bytes_after);
    Ok(())
}

/// With nothing to delete or repack, prune still merges the small parity
/// groups (see `regroup.rs`): new groups first, then the old parity objects.
pub(super) fn merge_small_groups(repository: &Repository, plan: &PrunePlan) -> Result<()> {
    let live: HashMap<Id, u64> = plan
        .keep
        .iter()
        .filter_map(|pack| Some((*pack, *plan.pack_sizes.get(pack)?)))
        .collect();
    for name in regroup::protect_survivors(repository, &live)? {
        repository.backend().delete(ObjectKind::Parity, &name)?;
    }
    Ok(())
}

/// Copies the used blobs of the packs to repack into new packs; every blob
/// is decoded (so checked against its id) on the way: damage is never copied.
fn repack(
    repository: &Repository,
    plan: &PrunePlan,
    kept: Arc<Index>,
    progress: &dyn Progress,
) -> Result<crate::repo::WriteSummary> {
    let repack_bytes: u64 = plan.repack.iter().map(|pack| plan.size_of(pack)).sum();
    progress.start("repacking", repack_bytes);
    let writer = PackWriter::with_known(repository, kept)?;
    plan.repack.par_iter().try_for_each(|pack| {
        let name = pack.to_hex();
        let bytes = repository.backend().read(ObjectKind::Pack, &name)?;
        for entry in pack::parse_pack(&name, &bytes, repository.keys())? {
            if !plan.used_from(pack, &entry) {
                continue;
            }
            let start = entry.offset as usize;
            let stored = bytes
                .get(start..start + entry.stored_length as usize)
                .ok_or_else(|| Error::corrupt(format!("pack {name}"), "blob outside the pack"))?;
            let object = || format!("blob {} in pack {name}", entry.id);
            repository.check_declared_length(&entry, object)?;
            let raw = pack::decode_blob(&entry, stored, repository.keys(), object)?;
            writer.add(entry.id, entry.kind, &raw)?;
        }
        progress.advance(bytes.len() as u64);
        Ok::<(), Error>(())
    })?;
    let written = writer.finish()?;
    progress.finish();
    Ok(written)
}
