//! Prune's parity work (repositories with parity): re-protecting the kept
//! packs of every group that loses members, and merging groups smaller than
//! `data_packs` into full ones.
//!
//! A group of n < `data_packs` packs costs `parity_packs / n` of its data
//! (each backup's last group is such a group: 2 parity objects over 3 packs
//! cost 67%, not 20%), so when there are two or more of them, or survivors
//! to protect anyway, their packs are grouped again into full groups.
//!
//! Crash safety: the new groups are written (durably) before any pack is
//! deleted, and the old groups' parity objects only after the packs are
//! gone (see the module documentation of `prune`); a parity object the new
//! groups wrote again under the same name (an identical group) is kept.

use std::collections::{HashMap, HashSet};

use crate::error::Result;
use crate::format::parity::GroupMember;
use crate::id::Id;
use crate::repo::parity::ParityGroup;
use crate::repo::Repository;

/// Writes new groups over the kept packs (`live`, with their sizes) of
/// every group that names a pack outside `live` (deleted now, or by an earlier prune that was killed)
/// and, when worthwhile, of the small groups; returns the parity objects of
/// the groups replaced, to delete once the packs are. Lengths come from the
/// pack listing, never from the parity headers (untrusted input).
pub(super) fn protect_survivors(
    repository: &Repository,
    live: &HashMap<Id, u64>,
) -> Result<Vec<String>> {
    let Some(scheme) = repository.parity_config() else {
        return Ok(Vec::new());
    };
    let mut listing = repository.parity_listing(false)?;
    // A group that gives a kept pack another length than it has is not a
    // real group: it covers nothing (`repair packs` deletes it).
    listing.drop_inconsistent(live);
    let is_live = |group: &ParityGroup| {
        group
            .header
            .members
            .iter()
            .all(|member| live.contains_key(&member.pack))
    };
    let (live_groups, mut replaced): (Vec<&ParityGroup>, Vec<&ParityGroup>) =
        listing.groups.values().partition(|group| is_live(group));
    let (small, full): (Vec<&ParityGroup>, Vec<&ParityGroup>) = live_groups
        .into_iter()
        .partition(|group| group.header.members.len() < scheme.data_packs as usize);
    let covered: HashSet<Id> = full
        .iter()
        .flat_map(|group| group.header.members.iter().map(|member| member.pack))
        .collect();
    let has_survivors = replaced.iter().any(|group| {
        group
            .header
            .members
            .iter()
            .any(|member| live.contains_key(&member.pack) && !covered.contains(&member.pack))
    });
    let covered = if small.len() + usize::from(has_survivors) >= 2 {
        replaced.extend(small);
        covered
    } else {
        // Nothing to merge: the small groups stay, and cover their packs.
        covered
            .into_iter()
            .chain(
                small
                    .iter()
                    .flat_map(|group| group.header.members.iter().map(|member| member.pack)),
            )
            .collect()
    };
    let mut survivors: Vec<GroupMember> = Vec::new();
    for member in replaced.iter().flat_map(|group| &group.header.members) {
        let Some(length) = live.get(&member.pack) else {
            continue;
        };
        if !covered.contains(&member.pack)
            && !survivors
                .iter()
                .any(|survivor| survivor.pack == member.pack)
        {
            survivors.push(GroupMember {
                pack: member.pack,
                length: *length,
            });
        }
    }
    let written: HashSet<String> = repository.protect_packs(&survivors)?.into_iter().collect();
    Ok(replaced
        .iter()
        .flat_map(|group| group.shards.iter().flatten())
        .filter(|name| !written.contains(*name))
        .cloned()
        .collect())
}
