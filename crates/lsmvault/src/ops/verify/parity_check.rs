//! Verify's parity checks, in a repository with parity: every parity object
//! parses (with `--read-data`: hashes to its name and matches the packs of
//! its group), every group whose packs are all present has all its parity
//! objects, and every damaged or lost pack is told whether its group can
//! rebuild it (`lsmvault repair packs`) or why not.
//!
//! A group that names packs neither listed nor damaged-and-indexed (prune
//! deleted them; a killed prune can leave such a group behind) is stale,
//! not damage: its survivors are protected by a newer group.

use std::collections::{HashMap, HashSet};

use super::{Findings, ReadData};
use crate::error::Result;
use crate::id::Id;
use crate::repo::Repository;

/// What a finding says when `lsmvault repair packs` can fix it.
const REPAIRABLE: &str = "repairable: `lsmvault repair packs`";

impl Repository {
    /// Checks the parity objects and notes on every broken pack's findings
    /// whether parity can rebuild it. `listed` are the packs the backend lists.
    pub(super) fn verify_parity(
        &self,
        indexed: &HashSet<Id>,
        listed: &HashMap<Id, u64>,
        read_data: ReadData,
        findings: &mut Findings,
    ) -> Result<()> {
        let whole = read_data == ReadData::All;
        if self.parity_config().is_none() {
            return Ok(());
        }
        let mut listing = self.parity_listing(whole)?;
        // Only intact packs vouch for their length (a truncated one does not).
        let intact_sizes: HashMap<Id, u64> = listed
            .iter()
            .filter(|(pack, _)| !findings.broken_packs.contains_key(pack))
            .map(|(pack, size)| (*pack, *size))
            .collect();
        listing.drop_inconsistent(&intact_sizes);
        for damaged in &listing.damaged {
            let object = format!("parity object {}", damaged.name);
            findings.add(object.clone(), damaged.reason.clone());
            note(findings, &object, REPAIRABLE.into());
        }
        let broken: HashSet<Id> = findings.broken_packs.keys().copied().collect();
        let intact = |pack: &Id| listed.contains_key(pack) && !broken.contains(pack);
        for group in listing.groups.values() {
            let members = &group.header.members;
            if !members.iter().all(|member| intact(&member.pack)) {
                continue;
            }
            let missing: Vec<String> = group
                .shards
                .iter()
                .enumerate()
                .filter(|(_, shard)| shard.is_none())
                .map(|(index, _)| index.to_string())
                .collect();
            // A group whose packs are not all indexed may be a running
            // backup's (it writes parity shard by shard, then its index) or
            // a killed one's leftover: not damage.
            let committed = members.iter().all(|member| indexed.contains(&member.pack));
            if !missing.is_empty() && committed && !listing.is_superseded(group) {
                let object = format!("parity group {}", group.id.short());
                let problem = format!("parity shard(s) {} missing", missing.join(", "));
                findings.add(object.clone(), problem);
                note(findings, &object, REPAIRABLE.into());
            }
            if whole {
                let expected = match self.expected_parity_names(members, group.header.parity_count)
                {
                    Ok(expected) => expected,
                    Err(error) if error.is_damage() => {
                        let object = format!("parity group {}", group.id.short());
                        findings.add(object, format!("cannot be coded again: {error}"));
                        continue;
                    }
                    Err(error) => return Err(error),
                };
                for (name, wanted) in group.shards.iter().zip(&expected) {
                    if let Some(name) = name.as_ref().filter(|name| *name != wanted) {
                        let object = format!("parity object {name}");
                        let problem = format!(
                            "does not match the packs of group {} (they code to {wanted})",
                            group.id.short()
                        );
                        findings.add(object.clone(), problem);
                    }
                }
            }
        }
        // Backup, `wal archive` and prune write parity before the index
        // names their packs: an indexed pack in no group lost its parity.
        let grouped: HashSet<Id> = listing
            .groups
            .values()
            .flat_map(|group| group.header.members.iter().map(|member| member.pack))
            .collect();
        let mut unprotected: Vec<String> = indexed
            .iter()
            .copied()
            .filter(|pack| intact(pack) && !grouped.contains(pack))
            .map(|pack| pack.to_hex())
            .collect();
        if !unprotected.is_empty() {
            unprotected.sort();
            let object = "parity of packs".to_string();
            let problem = format!(
                "{} indexed pack(s) are in no parity group: {}",
                unprotected.len(),
                unprotected.join(", ")
            );
            findings.add(object.clone(), problem);
            note(findings, &object, REPAIRABLE.into());
        }
        let notes: Vec<(Vec<String>, String)> = findings
            .broken_packs
            .iter()
            .map(|(pack, objects)| {
                let text = match listing.can_rebuild(pack, intact) {
                    Ok(_) => REPAIRABLE.to_string(),
                    Err(reason) => format!("not repairable: {reason}"),
                };
                (objects.clone(), text)
            })
            .collect();
        for (objects, text) in notes {
            for object in objects {
                note(findings, &object, text.clone());
            }
        }
        Ok(())
    }
}

fn note(findings: &mut Findings, object: &str, text: String) {
    if let Some(finding) = findings.by_object.get_mut(object) {
        finding.parity = Some(text);
    }
}
