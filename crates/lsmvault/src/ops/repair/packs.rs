//! `repair packs`: rebuilds lost and damaged packs from their parity group,
//! rewrites lost or damaged parity objects of intact groups, and protects
//! indexed packs no group covers.
//!
//! A pack needs repair when the index names it and it is missing, or when
//! its bytes do not hash to its name (every pack is read; a damaged pack no
//! index names is a killed backup's garbage, left to prune). A group can
//! rebuild its lost members when no more of its packs and parity objects are
//! lost than it has parity shards; packs a group names that are neither
//! listed nor indexed (deleted by prune) count as lost for that group. Groups
//! are tried until none makes progress, since a pack rebuilt from one group
//! may complete another.
//!
//! Crash safety: a rebuilt pack is checked against its name, then published
//! create-if-absent; a damaged one is deleted first (a kill in between leaves
//! it missing, and still rebuildable: the parity objects are untouched).
//! Parity objects are only ever added or replaced by their correct bytes
//! before a damaged one is deleted.

use std::collections::{BTreeMap, HashMap, HashSet};

use rayon::prelude::*;
use serde::Serialize;

use crate::backend::ObjectKind;
use crate::error::Result;
use crate::format::parity::GroupMember;
use crate::id::Id;
use crate::progress::Progress;
use crate::repo::lock::LockKind;
use crate::repo::pack_writer::write_replacing_damaged;
use crate::repo::parity::{ParityGroup, ParityListing};
use crate::repo::{check_name, Repository};

/// Options for [`Repository::repair_packs`].
#[derive(Debug, Clone, Default)]
pub struct RepairPacksOptions {
    /// Find and report only: write and delete nothing.
    pub dry_run: bool,
}

/// A pack rebuilt (or, in a dry run, rebuildable) from parity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RebuiltPack {
    /// The pack's name.
    pub pack: String,
    /// What was wrong with it.
    pub problem: String,
    /// The parity group it was rebuilt from (short id).
    pub group: String,
}

/// A pack parity could not rebuild.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LostPack {
    /// The pack's name.
    pub pack: String,
    /// What is wrong with it.
    pub problem: String,
    /// Why parity cannot rebuild it.
    pub reason: String,
    /// The blobs the index places in it (lost with it unless stored elsewhere).
    pub blobs: Vec<String>,
}

/// A parity object removed or rewritten, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParityChange {
    /// The object's name.
    pub name: String,
    /// What was done and why.
    pub reason: String,
}

/// What [`Repository::repair_packs`] found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairPacksReport {
    /// True when nothing was written or deleted.
    pub dry_run: bool,
    /// Packs listed and read.
    pub packs_checked: usize,
    /// Parity objects listed and read.
    pub parity_objects_checked: usize,
    /// Parity groups found.
    pub groups: usize,
    /// Packs rebuilt from parity.
    pub rebuilt: Vec<RebuiltPack>,
    /// Packs that could not be rebuilt.
    pub lost: Vec<LostPack>,
    /// Parity objects written again (lost or damaged shards of intact groups).
    pub parity_rewritten: Vec<ParityChange>,
    /// Damaged parity objects deleted (after their group was rewritten).
    pub parity_removed: Vec<ParityChange>,
    /// Indexed packs no parity group covered, now protected.
    pub packs_protected: usize,
}

/// The state of every pack, as found.
struct PackState {
    /// Listed packs whose bytes hash to their name.
    intact: HashSet<Id>,
    /// Packs needing repair and what is wrong with each.
    broken: BTreeMap<Id, String>,
    /// The blobs the index places in each pack.
    indexed: HashMap<Id, Vec<Id>>,
    /// The size of every listed pack.
    sizes: HashMap<Id, u64>,
    /// How many packs were listed (and read).
    listed: usize,
}

impl PackState {
    /// The sizes of the intact packs: only they vouch for their length (a
    /// truncated one does not).
    fn intact_sizes(&self) -> HashMap<Id, u64> {
        self.sizes
            .iter()
            .filter(|(pack, _)| self.intact.contains(pack))
            .map(|(pack, size)| (*pack, *size))
            .collect()
    }
}

impl Repository {
    /// Rebuilds lost and damaged packs from parity under the exclusive lock;
    /// see the module documentation.
    pub fn repair_packs(
        &self,
        options: &RepairPacksOptions,
        progress: &dyn Progress,
    ) -> Result<RepairPacksReport> {
        let _lock = self.lock(LockKind::Exclusive, "repair packs")?;
        let mut state = self.pack_state(progress)?;
        let mut listing = self.parity_listing(true)?;
        listing.drop_inconsistent(&state.intact_sizes());
        let mut report = RepairPacksReport {
            dry_run: options.dry_run,
            packs_checked: state.listed,
            parity_objects_checked: listing.objects,
            groups: listing.groups.len(),
            ..RepairPacksReport::default()
        };
        self.rebuild_from_groups(&listing, &mut state, options.dry_run, &mut report)?;
        for (pack, problem) in &state.broken {
            report.lost.push(LostPack {
                pack: pack.to_hex(),
                problem: problem.clone(),
                reason: why_not_rebuildable(&listing, &state, pack),
                blobs: state
                    .indexed
                    .get(pack)
                    .map(|blobs| blobs.iter().map(Id::to_hex).collect())
                    .unwrap_or_default(),
            });
        }
        // Rebuilt packs vouch for their length too: a lying group that named
        // one of them while it was lost is found now.
        listing.drop_inconsistent(&state.intact_sizes());
        self.rewrite_parity(&listing, &state, options.dry_run, &mut report)?;
        Ok(report)
    }

    /// Reads every pack (in parallel) and the index.
    fn pack_state(&self, progress: &dyn Progress) -> Result<PackState> {
        let mut indexed: HashMap<Id, Vec<Id>> = HashMap::new();
        for (_, entries) in self.read_index_files()?.readable {
            for location in entries {
                indexed
                    .entry(location.pack)
                    .or_default()
                    .push(location.entry.id);
            }
        }
        let listed = self.backend().list(ObjectKind::Pack)?;
        progress.start("reading packs", listed.iter().map(|pack| pack.size).sum());
        let checked: Vec<(String, Result<Id>)> = listed
            .par_iter()
            .map(|pack| {
                let checked = self
                    .backend()
                    .read(ObjectKind::Pack, &pack.name)
                    .map_err(Into::into)
                    .and_then(|bytes| check_name(ObjectKind::Pack, &pack.name, &bytes));
                progress.advance(pack.size);
                (pack.name.clone(), checked)
            })
            .collect();
        progress.finish();
        let mut state = PackState {
            intact: HashSet::new(),
            broken: BTreeMap::new(),
            indexed,
            listed: listed.len(),
            sizes: listed
                .iter()
                .filter_map(|pack| Some((Id::from_hex(&pack.name).ok()?, pack.size)))
                .collect(),
        };
        for (name, checked) in checked {
            match checked {
                Ok(id) => {
                    state.intact.insert(id);
                }
                // A damaged pack no index names is garbage (a killed
                // backup's): nothing needs it, prune removes it. It is
                // neither intact nor to repair: lost, for its groups.
                Err(error) if error.is_damage() => {
                    if let Some(id) = Id::from_hex(&name)
                        .ok()
                        .filter(|id| state.indexed.contains_key(id))
                    {
                        state.broken.insert(id, error.to_string());
                    }
                }
                Err(error) => return Err(error),
            }
        }
        let missing: Vec<Id> = state
            .indexed
            .keys()
            .filter(|pack| !state.intact.contains(pack) && !state.broken.contains_key(pack))
            .copied()
            .collect();
        for pack in missing {
            state.broken.insert(pack, "missing".into());
        }
        Ok(state)
    }

    /// Rebuilds what the groups can, group after group until none helps.
    fn rebuild_from_groups(
        &self,
        listing: &ParityListing,
        state: &mut PackState,
        dry_run: bool,
        report: &mut RepairPacksReport,
    ) -> Result<()> {
        let mut progress_made = true;
        while progress_made && !state.broken.is_empty() {
            progress_made = false;
            for group in listing.groups.values() {
                let lost = lost_members(group, state);
                let wanted: Vec<usize> = lost
                    .iter()
                    .copied()
                    .filter(|index| {
                        state
                            .broken
                            .contains_key(&group.header.members[*index].pack)
                    })
                    .collect();
                let usable = usable_shards(group);
                if wanted.is_empty() || lost.len() > usable.len() {
                    continue;
                }
                let rebuilt = if dry_run {
                    wanted.iter().map(|index| (*index, Vec::new())).collect()
                } else {
                    match self.rebuild_members(group, &lost, &usable[..lost.len()]) {
                        Ok(rebuilt) => rebuilt,
                        // Wrong bytes despite intact-looking inputs: this
                        // group cannot help; another may.
                        Err(error) if error.is_damage() => continue,
                        Err(error) => return Err(error),
                    }
                };
                for (index, bytes) in rebuilt {
                    let pack = group.header.members[index].pack;
                    let Some(problem) = state.broken.remove(&pack) else {
                        continue;
                    };
                    if !dry_run {
                        write_replacing_damaged(
                            self.backend().as_ref(),
                            ObjectKind::Pack,
                            &pack.to_hex(),
                            bytes::Bytes::from(bytes),
                        )?;
                    }
                    state.intact.insert(pack);
                    state.sizes.insert(pack, group.header.members[index].length);
                    report.rebuilt.push(RebuiltPack {
                        pack: pack.to_hex(),
                        problem,
                        group: group.id.short(),
                    });
                    progress_made = true;
                }
            }
        }
        Ok(())
    }

    /// Writes the lost parity shards of groups whose packs are all intact,
    /// deletes damaged parity objects, and protects uncovered indexed packs.
    fn rewrite_parity(
        &self,
        listing: &ParityListing,
        state: &PackState,
        dry_run: bool,
        report: &mut RepairPacksReport,
    ) -> Result<()> {
        let mut covered: HashSet<Id> = HashSet::new();
        let mut rewritten: HashSet<String> = HashSet::new();
        for group in listing.groups.values() {
            let members = &group.header.members;
            // Only groups of intact, indexed packs: a group of unindexed
            // packs is a killed backup's leftover, which prune removes.
            if !members.iter().all(|member| {
                state.intact.contains(&member.pack) && state.indexed.contains_key(&member.pack)
            }) {
                continue;
            }
            covered.extend(members.iter().map(|member| member.pack));
            let missing: Vec<u16> = (0..group.header.parity_count)
                .filter(|index| group.shards[usize::from(*index)].is_none())
                .collect();
            if missing.is_empty() || listing.is_superseded(group) {
                continue;
            }
            let names = if dry_run {
                missing
                    .iter()
                    .map(|index| format!("shard {index} of group {}", group.id.short()))
                    .collect()
            } else {
                self.write_parity_group(members, group.header.parity_count, &missing)?
            };
            for name in names {
                rewritten.insert(name.clone());
                report.parity_rewritten.push(ParityChange {
                    name,
                    reason: format!("lost shard of group {}", group.id.short()),
                });
            }
        }
        for damaged in &listing.damaged {
            if !rewritten.contains(&damaged.name) && !dry_run {
                self.backend().delete(ObjectKind::Parity, &damaged.name)?;
            }
            report.parity_removed.push(ParityChange {
                name: damaged.name.clone(),
                reason: if rewritten.contains(&damaged.name) {
                    format!("{} (replaced by its rebuilt bytes)", damaged.reason)
                } else {
                    damaged.reason.clone()
                },
            });
        }
        report.packs_protected = self.protect_uncovered(state, &covered, dry_run)?;
        Ok(())
    }
}

impl Repository {
    /// Writes new groups over the intact indexed packs no complete group
    /// covers (all parity lost, or the survivors of a group that cannot be
    /// rebuilt); returns how many packs that was.
    fn protect_uncovered(
        &self,
        state: &PackState,
        covered: &HashSet<Id>,
        dry_run: bool,
    ) -> Result<usize> {
        if self.parity_config().is_none() {
            return Ok(0);
        }
        let mut uncovered: Vec<GroupMember> = state
            .intact_sizes()
            .into_iter()
            .filter(|(pack, _)| state.indexed.contains_key(pack) && !covered.contains(pack))
            .map(|(pack, length)| GroupMember { pack, length })
            .collect();
        uncovered.sort_by_key(|member| member.pack);
        if !dry_run && !uncovered.is_empty() {
            self.protect_packs(&uncovered)?;
        }
        Ok(uncovered.len())
    }
}

/// Member indices of `group` whose pack is not intact (broken, or gone).
fn lost_members(group: &ParityGroup, state: &PackState) -> Vec<usize> {
    group
        .header
        .members
        .iter()
        .enumerate()
        .filter(|(_, member)| !state.intact.contains(&member.pack))
        .map(|(index, _)| index)
        .collect()
}

/// The group's intact parity objects, by shard index.
fn usable_shards(group: &ParityGroup) -> Vec<(usize, String)> {
    group
        .shards
        .iter()
        .enumerate()
        .filter_map(|(index, name)| name.clone().map(|name| (index, name)))
        .collect()
}

/// Why no group can rebuild `pack`: the least damaged group it belongs to.
fn why_not_rebuildable(listing: &ParityListing, state: &PackState, pack: &Id) -> String {
    match listing.can_rebuild(pack, |member| state.intact.contains(member)) {
        // Its group could, but the rebuilt bytes did not match its name.
        Ok(group) => format!(
            "group {} should rebuild it, but the rebuilt bytes do not hash to its name \
             (another member or parity object is damaged)",
            group.short()
        ),
        Err(reason) => reason,
    }
}
