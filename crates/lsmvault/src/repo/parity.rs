//! Parity over groups of packs: writing the parity objects of a group,
//! listing the groups the parity objects describe, and rebuilding lost
//! members of a group from the rest.
//!
//! A group is `n` packs (data shards, `n <= data_packs` of the config) and
//! `m` parity objects (`parity_packs`); any `m` of the `n + m` can be lost.
//! Everything is coded stripe by stripe (`format/parity.rs`), reading the
//! members with ranged reads, so memory holds one stripe per member plus the
//! shards being built, never a whole group of packs.
//!
//! Invariants: a group's parity is written (durably, create-if-absent) from
//! the packs as stored, after they were published; a rebuilt pack is
//! accepted only when its bytes hash to its name. Backup, `wal archive` and
//! prune call [`Repository::protect_packs`] before their commit point, so
//! every pack a snapshot or WAL record depends on is protected once it
//! commits.

use std::collections::{BTreeMap, HashMap};

use rayon::prelude::*;

use crate::backend::ObjectKind;
use crate::codec::erasure;
use crate::error::{Error, Result};
use crate::format::config::ParityConfig;
use crate::format::parity::{self, GroupMember, ParityHeader, MAX_HEADER_LENGTH};
use crate::id::Id;
use crate::repo::pack_writer::write_replacing_damaged;
use crate::repo::{check_name, Repository};

/// One group, as its parity objects describe it.
#[derive(Debug, Clone)]
pub struct ParityGroup {
    /// The group's id ([`ParityHeader::group_id`]).
    pub id: Id,
    /// The header of one of its shards (the shard index aside, all agree).
    pub header: ParityHeader,
    /// The parity object holding each shard index, where one was found.
    pub shards: Vec<Option<String>>,
}

impl ParityGroup {
    /// Data plus parity shards of the group.
    pub fn width(&self) -> usize {
        self.header.members.len() + usize::from(self.header.parity_count)
    }
}

/// A parity object that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedParity {
    /// The object's name.
    pub name: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Every group the parity objects describe.
#[derive(Debug, Clone, Default)]
pub struct ParityListing {
    /// Groups by id.
    pub groups: BTreeMap<Id, ParityGroup>,
    /// Parity objects that are unreadable or damaged.
    pub damaged: Vec<DamagedParity>,
    /// Parity objects listed.
    pub objects: usize,
}

impl ParityListing {
    /// Moves the groups that give a present pack another length than it
    /// has (`sizes`: the listed packs) to the damaged objects: a real
    /// group's lengths are those of its packs, whose names are their
    /// hashes, so such a group was written by someone else. Nothing is then
    /// read by a length such a header declares.
    pub fn drop_inconsistent(&mut self, sizes: &HashMap<Id, u64>) {
        let inconsistent: Vec<(Id, String)> = self
            .groups
            .values()
            .filter_map(|group| {
                group.header.members.iter().find_map(|member| {
                    let size = sizes.get(&member.pack)?;
                    (*size != member.length).then(|| {
                        (
                            group.id,
                            format!(
                                "names pack {} of {} bytes, but it has {size}",
                                member.pack, member.length
                            ),
                        )
                    })
                })
            })
            .collect();
        for (id, reason) in inconsistent {
            if let Some(group) = self.groups.remove(&id) {
                for name in group.shards.into_iter().flatten() {
                    self.damaged.push(DamagedParity {
                        name,
                        reason: format!("parity object of group {}: {reason}", id.short()),
                    });
                }
            }
        }
        self.damaged.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Whether parity can rebuild `pack` given which packs are `intact`:
    /// `Ok(group)` names a group that can, `Err` says why none can (the
    /// least damaged group it belongs to, or that no group covers it).
    pub fn can_rebuild(
        &self,
        pack: &Id,
        intact: impl Fn(&Id) -> bool,
    ) -> std::result::Result<Id, String> {
        let mut best: Option<(usize, String)> = None;
        for (group, _) in self.groups_of(pack) {
            let lost_packs = group
                .header
                .members
                .iter()
                .filter(|member| !intact(&member.pack))
                .count();
            let lost_shards = group.shards.iter().filter(|shard| shard.is_none()).count();
            let lost = lost_packs + lost_shards;
            if lost <= usize::from(group.header.parity_count) {
                return Ok(group.id);
            }
            if best.as_ref().is_none_or(|(fewest, _)| lost < *fewest) {
                best = Some((
                    lost,
                    format!(
                        "group {} has lost {lost} of {} shards ({lost_packs} pack(s), \
                         {lost_shards} parity), tolerates {}",
                        group.id.short(),
                        group.width(),
                        group.header.parity_count
                    ),
                ));
            }
        }
        Err(best.map_or_else(|| "no parity group covers it".into(), |(_, reason)| reason))
    }

    /// Whether every pack of `group` is also in another group whose parity
    /// objects are all present: then `group` is a leftover (prune merges
    /// small groups and deletes their parity last; a kill can leave some of
    /// it) whose missing shards are not damage and need no rewriting.
    pub fn is_superseded(&self, group: &ParityGroup) -> bool {
        group.header.members.iter().all(|member| {
            self.groups_of(&member.pack)
                .any(|(other, _)| other.id != group.id && other.shards.iter().all(Option::is_some))
        })
    }

    /// The groups `pack` is a member of, with its index in each.
    pub fn groups_of<'a>(
        &'a self,
        pack: &'a Id,
    ) -> impl Iterator<Item = (&'a ParityGroup, usize)> + 'a {
        self.groups.values().filter_map(move |group| {
            group
                .header
                .members
                .iter()
                .position(|member| member.pack == *pack)
                .map(|index| (group, index))
        })
    }
}

/// A header read alone must declare exactly the object's listed size, so
/// that no length it declares is believed beyond what is stored.
fn check_object_size(name: &str, header: ParityHeader, size: u64) -> Result<ParityHeader> {
    let declared = header.header_length() as u64 + header.shard_length;
    if declared != size {
        return Err(Error::corrupt(
            format!("parity object {name}"),
            format!("its header declares {declared} bytes, the object has {size}"),
        ));
    }
    Ok(header)
}

impl Repository {
    /// The repository's parity scheme (`None`: no parity).
    pub fn parity_config(&self) -> Option<ParityConfig> {
        self.config.parity
    }

    /// Writes parity over `packs` (in order, in groups of the configured
    /// `data_packs`, the last group possibly smaller); nothing when the
    /// repository has no parity. Returns the names of the parity objects.
    pub fn protect_packs(&self, packs: &[GroupMember]) -> Result<Vec<String>> {
        let Some(scheme) = self.config.parity else {
            return Ok(Vec::new());
        };
        let parity_count = scheme.parity_packs as u16;
        let all_shards: Vec<u16> = (0..parity_count).collect();
        let mut written = Vec::new();
        for group in packs.chunks(scheme.data_packs as usize) {
            written.extend(self.write_parity_group(group, parity_count, &all_shards)?);
        }
        Ok(written)
    }

    /// Codes the group of `members` (read from the backend) and publishes
    /// the parity objects of the shard indices in `shards`; a damaged object
    /// already under one of their names is replaced. Returns the names.
    pub fn write_parity_group(
        &self,
        members: &[GroupMember],
        parity_count: u16,
        shards: &[u16],
    ) -> Result<Vec<String>> {
        let objects = self.encode_parity_group(members, parity_count)?;
        let mut names = Vec::new();
        for index in shards {
            let Some(bytes) = objects.get(usize::from(*index)) else {
                continue;
            };
            let name = Id::of(bytes).to_hex();
            write_replacing_damaged(
                self.backend.as_ref(),
                ObjectKind::Parity,
                &name,
                bytes::Bytes::copy_from_slice(bytes),
            )?;
            names.push(name);
        }
        Ok(names)
    }

    /// The names the parity objects of the group of `members` must have
    /// (their bytes' hashes), computed from the packs as stored: a stored
    /// shard under another name does not match its packs.
    pub fn expected_parity_names(
        &self,
        members: &[GroupMember],
        parity_count: u16,
    ) -> Result<Vec<String>> {
        Ok(self
            .encode_parity_group(members, parity_count)?
            .iter()
            .map(|bytes| Id::of(bytes).to_hex())
            .collect())
    }

    /// Every parity object of the group of `members`, coded from the packs.
    fn encode_parity_group(
        &self,
        members: &[GroupMember],
        parity_count: u16,
    ) -> Result<Vec<Vec<u8>>> {
        let headers: Vec<ParityHeader> = (0..parity_count)
            .map(|index| ParityHeader::new(members.to_vec(), parity_count, index))
            .collect();
        let Some(first) = headers.first() else {
            return Ok(Vec::new());
        };
        let shard_length = first.shard_length;
        let stripe_size = u64::from(first.stripe_size);
        let mut objects: Vec<Vec<u8>> = headers
            .iter()
            .map(|header| {
                let mut bytes = Vec::with_capacity(header.header_length() + shard_length as usize);
                bytes.extend_from_slice(&header.encode(&[]));
                bytes
            })
            .collect();
        let mut offset = 0;
        while offset < shard_length {
            let length = stripe_size.min(shard_length - offset);
            let stripe = self.read_member_stripes(members, offset, length)?;
            let slices: Vec<&[u8]> = stripe.iter().map(Vec::as_slice).collect();
            for (object, shard) in objects
                .iter_mut()
                .zip(erasure::encode(&slices, parity_count.into())?)
            {
                object.extend_from_slice(&shard);
            }
            offset += length;
        }
        Ok(objects)
    }

    /// Bytes `[offset, offset + length)` of every member, zero-padded past
    /// each member's end.
    fn read_member_stripes(
        &self,
        members: &[GroupMember],
        offset: u64,
        length: u64,
    ) -> Result<Vec<Vec<u8>>> {
        members
            .par_iter()
            .map(|member| {
                let present = length.min(member.length.saturating_sub(offset));
                // A range starting past a pack's end is an error (a short
                // pack is damage): past its end a member is only padding.
                let mut bytes = if present == 0 {
                    Vec::new()
                } else {
                    self.backend.read_range(
                        ObjectKind::Pack,
                        &member.pack.to_hex(),
                        offset,
                        present,
                    )?
                };
                bytes.resize(length as usize, 0);
                Ok(bytes)
            })
            .collect()
    }

    /// Lists every parity object and groups them. With `read_whole` each
    /// object is read whole and must hash to its name (otherwise only its
    /// header is read). Damaged objects are listed, not errors; a failure
    /// of the storage itself is.
    pub fn parity_listing(&self, read_whole: bool) -> Result<ParityListing> {
        let objects = self.backend.list(ObjectKind::Parity)?;
        let decoded: Vec<(String, Result<ParityHeader>)> = objects
            .par_iter()
            .map(|object| {
                let name = object.name.clone();
                let header = if read_whole {
                    self.backend
                        .read(ObjectKind::Parity, &name)
                        .map_err(Error::from)
                        .and_then(|bytes| {
                            check_name(ObjectKind::Parity, &name, &bytes)?;
                            parity::decode(&name, &bytes).map(|(header, _)| header)
                        })
                } else {
                    let prefix = object.size.min(MAX_HEADER_LENGTH as u64);
                    self.backend
                        .read_range(ObjectKind::Parity, &name, 0, prefix)
                        .map_err(Error::from)
                        .and_then(|bytes| parity::decode_header(&name, &bytes))
                        .and_then(|header| check_object_size(&name, header, object.size))
                };
                (name, header)
            })
            .collect();
        let mut listing = ParityListing {
            objects: objects.len(),
            ..ParityListing::default()
        };
        for (name, header) in decoded {
            let header = match header {
                Ok(header) => header,
                Err(error) if error.is_damage() => {
                    listing.damaged.push(DamagedParity {
                        name,
                        reason: error.to_string(),
                    });
                    continue;
                }
                Err(error) => return Err(error),
            };
            let id = header.group_id();
            let group = listing.groups.entry(id).or_insert_with(|| ParityGroup {
                id,
                shards: vec![None; usize::from(header.parity_count)],
                header: header.clone(),
            });
            if let Some(slot) = group.shards.get_mut(usize::from(header.shard_index)) {
                slot.get_or_insert(name);
            }
        }
        listing.damaged.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(listing)
    }

    /// Rebuilds the members of `group` at `lost` from the other members and
    /// the parity objects in `usable_shards` (index -> object name), which
    /// must be at least `lost.len()` and intact. Each rebuilt pack is
    /// checked against its name. Returns `(member index, pack bytes)`.
    pub fn rebuild_members(
        &self,
        group: &ParityGroup,
        lost: &[usize],
        usable_shards: &[(usize, String)],
    ) -> Result<Vec<(usize, Vec<u8>)>> {
        let header = &group.header;
        let members = &header.members;
        if usable_shards.len() < lost.len() {
            return Err(Error::InvalidArgument(format!(
                "parity group {} has {} usable parity shards for {} lost packs",
                group.id.short(),
                usable_shards.len(),
                lost.len()
            )));
        }
        let present: Vec<GroupMember> = members
            .iter()
            .enumerate()
            .filter(|(index, _)| !lost.contains(index))
            .map(|(_, member)| *member)
            .collect();
        let header_length = header.header_length() as u64;
        let mut rebuilt: BTreeMap<usize, Vec<u8>> = lost
            .iter()
            .map(|index| (*index, Vec::with_capacity(members[*index].length as usize)))
            .collect();
        let stripe_size = u64::from(header.stripe_size);
        let mut offset = 0;
        while offset < header.shard_length {
            let length = stripe_size.min(header.shard_length - offset);
            let present_stripes = self.read_member_stripes(&present, offset, length)?;
            let parity_stripes: Vec<(usize, Vec<u8>)> = usable_shards
                .par_iter()
                .map(|(index, name)| {
                    self.backend
                        .read_range(ObjectKind::Parity, name, header_length + offset, length)
                        .map(|bytes| (*index, bytes))
                        .map_err(Error::from)
                })
                .collect::<Result<_>>()?;
            let mut present_iter = present_stripes.iter();
            let data: Vec<Option<&[u8]>> = (0..members.len())
                .map(|index| {
                    if lost.contains(&index) {
                        None
                    } else {
                        present_iter.next().map(Vec::as_slice)
                    }
                })
                .collect();
            let mut recovery: Vec<Option<&[u8]>> = vec![None; usize::from(header.parity_count)];
            for (index, bytes) in &parity_stripes {
                if let Some(slot) = recovery.get_mut(*index) {
                    *slot = Some(bytes.as_slice());
                }
            }
            for (index, bytes) in erasure::reconstruct(&data, &recovery, length as usize)? {
                if let Some(pack) = rebuilt.get_mut(&index) {
                    let wanted = members[index].length.saturating_sub(offset).min(length);
                    pack.extend_from_slice(&bytes[..wanted as usize]);
                }
            }
            offset += length;
        }
        rebuilt
            .into_iter()
            .map(|(index, bytes)| {
                check_name(ObjectKind::Pack, &members[index].pack.to_hex(), &bytes)?;
                Ok((index, bytes))
            })
            .collect()
    }
}
