//! Snapshot files: listing, reading (checked against their names), selecting
//! (`latest`, `latest:TAG`, id prefixes) and publishing them.
//!
//! Containment: one damaged snapshot file blocks nothing else.
//! [`Repository::snapshots_checked`] returns the damaged files beside the
//! intact snapshots, so listing, parent choice, restore of other snapshots,
//! stats and forget carry on and name them. [`Repository::snapshots`] stays
//! strict for callers that must see every snapshot (prune: the blobs a
//! damaged snapshot needs are unknown, so nothing may be deleted) and fails
//! with [`Error::DamagedSnapshot`] naming the first damaged file.

use rayon::prelude::*;
use serde::Serialize;

use crate::backend::{ObjectInfo, ObjectKind};
use crate::codec::crypto::SealKind;
use crate::error::{Error, ErrorCode, Result};
use crate::format::snapshot::{self, Snapshot, SnapshotEntry};
use crate::id::Id;
use crate::repo::{check_name, Repository};

/// A repository object that could not be read: its name and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DamagedObject {
    /// The object's name (a snapshot file's name: 64 hex digits, normally
    /// its id).
    pub name: String,
    /// The error reading it gave, in words.
    pub reason: String,
    /// That error's code (`corrupt_object`, `checksum_mismatch`,
    /// `authentication_failed`, or `unsupported_version` for a file of a
    /// newer build, which is unreadable here but not damaged); serialized
    /// as its stable name.
    #[serde(serialize_with = "code_name")]
    pub code: ErrorCode,
}

fn code_name<S: serde::Serializer>(code: &ErrorCode, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(code.name())
}

/// What a snapshot selector resolved to, damaged files included.
#[derive(Debug, Clone)]
pub enum SelectedSnapshot {
    /// An intact snapshot.
    Intact(Box<SnapshotEntry>),
    /// A snapshot file that cannot be read (only a full name or an id
    /// prefix selects one, never `latest`).
    Damaged(DamagedObject),
}

impl SelectedSnapshot {
    /// The intact snapshot, or [`Error::DamagedSnapshot`] naming the
    /// damaged one: for commands that need to read what they selected.
    pub fn intact(self) -> Result<SnapshotEntry> {
        match self {
            SelectedSnapshot::Intact(entry) => Ok(*entry),
            SelectedSnapshot::Damaged(damaged) => Err(Error::DamagedSnapshot {
                name: damaged.name,
                reason: damaged.reason,
                code: damaged.code,
            }),
        }
    }
}

impl Repository {
    /// Every snapshot, oldest first; fails with [`Error::DamagedSnapshot`]
    /// if any snapshot file cannot be read (see
    /// [`Repository::snapshots_checked`] to carry on without it).
    pub fn snapshots(&self) -> Result<Vec<SnapshotEntry>> {
        let (entries, damaged) = self.snapshots_checked()?;
        match damaged.into_iter().next() {
            None => Ok(entries),
            Some(first) => Err(Error::DamagedSnapshot {
                name: first.name,
                reason: first.reason,
                code: first.code,
            }),
        }
    }

    /// Every intact snapshot, oldest first, and beside them the snapshot
    /// files that are damaged (fail their checks, do not parse, are of an
    /// unknown version), sorted by name. Fails only when the storage does.
    pub fn snapshots_checked(&self) -> Result<(Vec<SnapshotEntry>, Vec<DamagedObject>)> {
        let listed = self.backend.list(ObjectKind::Snapshot)?;
        self.read_listed_snapshots(&listed)
    }

    /// The snapshots a backup chooses its parent among: from the listing
    /// the metadata cache holds when the index listing says no prune ran
    /// since it was taken (a snapshot forgotten meanwhile still has all its
    /// blobs; one written meanwhile by another client is missed, which
    /// costs re-reading files at worst), else from a fresh listing.
    pub(crate) fn snapshots_for_parent(&self) -> Result<(Vec<SnapshotEntry>, Vec<DamagedObject>)> {
        let cached = self
            .cache_gate()
            .and_then(|gate| gate.cached_listing(ObjectKind::Snapshot));
        match cached {
            Some(listed) => self.read_listed_snapshots(&listed),
            None => self.snapshots_checked(),
        }
    }

    /// Reads the listed snapshot files. A handle opened from the metadata
    /// cache that finds damaged ones, or none, first makes sure the location
    /// still holds the repository it knew (another one's files would all
    /// look damaged under its key; a deleted one has none).
    fn read_listed_snapshots(
        &self,
        listed: &[ObjectInfo],
    ) -> Result<(Vec<SnapshotEntry>, Vec<DamagedObject>)> {
        let (mut entries, damaged) =
            self.read_listed_objects(listed, |name| self.read_snapshot(name))?;
        // No snapshot at all may be a deleted repository too.
        if !damaged.is_empty() || listed.is_empty() {
            self.confirm_cache()?;
        }
        snapshot::sort_by_time(&mut entries);
        Ok((entries, damaged))
    }

    /// Reads every object of `kind` with `read`, in parallel: the intact
    /// ones, and the damaged ones named with why (sorted by name). An object
    /// deleted between listing and reading (a concurrent forget or prune) is
    /// neither; only a storage failure fails the whole.
    pub(crate) fn read_every_object<T: Send>(
        &self,
        kind: ObjectKind,
        read: impl Fn(&str) -> Result<T> + Sync,
    ) -> Result<(Vec<T>, Vec<DamagedObject>)> {
        let listed = self.backend.list(kind)?;
        self.read_listed_objects(&listed, read)
    }

    /// [`Repository::read_every_object`] on a listing made already.
    fn read_listed_objects<T: Send>(
        &self,
        listed: &[ObjectInfo],
        read: impl Fn(&str) -> Result<T> + Sync,
    ) -> Result<(Vec<T>, Vec<DamagedObject>)> {
        let read: Vec<(String, Result<T>)> = listed
            .par_iter()
            .map(|object| (object.name.clone(), read(&object.name)))
            .collect();
        let mut intact = Vec::new();
        let mut damaged = Vec::new();
        for (name, result) in read {
            match result {
                Ok(object) => intact.push(object),
                Err(error) if error.is_damage() => damaged.push(DamagedObject {
                    name,
                    reason: error.to_string(),
                    code: error.code(),
                }),
                Err(Error::Backend(crate::backend::Error::NotFound { .. })) => {}
                Err(error) => return Err(error),
            }
        }
        damaged.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((intact, damaged))
    }

    /// Resolves a selector against intact and damaged snapshots: `latest`
    /// and `latest:TAG` choose among the intact ones (a damaged file's time
    /// is unknown); an id prefix matches intact ids and damaged file names
    /// alike, and is ambiguous if it matches more than one.
    pub fn select_snapshot(&self, selector: &str) -> Result<SelectedSnapshot> {
        let (entries, damaged) = self.snapshots_checked()?;
        select_checked(&entries, &damaged, selector)
    }

    /// Reads one snapshot file by its full name, checking its id.
    pub fn read_snapshot(&self, name: &str) -> Result<SnapshotEntry> {
        let bytes = self.backend.read(ObjectKind::Snapshot, name)?;
        let json = self
            .keys
            .open(SealKind::Snapshot, &bytes, || format!("snapshot {name}"))?;
        let id = check_name(ObjectKind::Snapshot, name, &bytes)?;
        Ok(SnapshotEntry {
            id,
            snapshot: Snapshot::decode(name, &json)?,
        })
    }

    /// Resolves an id, unique prefix, `latest` or `latest:TAG` to an intact
    /// snapshot. Damaged snapshot files do not stop it (`latest` is the
    /// newest intact one); selecting a damaged one fails with
    /// [`Error::DamagedSnapshot`].
    pub fn find_snapshot(&self, selector: &str) -> Result<SnapshotEntry> {
        self.select_snapshot(selector)?.intact()
    }

    /// Publishes a snapshot file (the commit point of a backup).
    pub fn write_snapshot(&self, snapshot: &Snapshot) -> Result<Id> {
        let bytes = self
            .keys
            .seal(SealKind::Snapshot, &snapshot.encode())?
            .into_owned();
        let id = Id::of(&bytes);
        self.backend
            .write_if_absent(ObjectKind::Snapshot, &id.to_hex(), &bytes)?;
        Ok(id)
    }
}

/// [`Repository::select_snapshot`] on listed snapshots.
pub fn select_checked(
    entries: &[SnapshotEntry],
    damaged: &[DamagedObject],
    selector: &str,
) -> Result<SelectedSnapshot> {
    let prefix = selector.to_ascii_lowercase();
    let is_prefix = !prefix.is_empty() && prefix.bytes().all(|byte| byte.is_ascii_hexdigit());
    let damaged_matches: Vec<&DamagedObject> = if is_prefix {
        damaged
            .iter()
            .filter(|object| object.name.to_ascii_lowercase().starts_with(&prefix))
            .collect()
    } else {
        Vec::new()
    };
    let intact = snapshot::select(entries, selector);
    match (intact, damaged_matches.as_slice()) {
        (Ok(entry), []) => Ok(SelectedSnapshot::Intact(Box::new(entry.clone()))),
        (Err(Error::SnapshotNotFound { .. }), [only]) => {
            Ok(SelectedSnapshot::Damaged((*only).clone()))
        }
        (Err(error), []) => Err(error),
        (intact, several) => {
            let mut candidates: Vec<String> = several
                .iter()
                .map(|object| object.name.chars().take(8).collect())
                .collect();
            if let Ok(entry) = intact {
                candidates.push(entry.id.short());
            }
            Err(Error::AmbiguousPrefix {
                prefix: selector.to_string(),
                candidates: candidates.join(", "),
            })
        }
    }
}
