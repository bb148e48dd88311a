//! Snapshot files: the commit point of a backup.
//!
//! A snapshot is a small JSON document naming a root tree, stored under the
//! BLAKE3 hash of its bytes in `snapshots/`. It is written only after every
//! pack, index file and tree it references has been published, so a snapshot
//! that exists is complete.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::Id;
use crate::time::Timestamp;

/// Snapshot file format version of backups (the `version` field).
pub const SNAPSHOT_VERSION: u32 = 1;
/// Snapshot file format version of a snapshot rewritten by `repair
/// snapshots`: version 1 plus the `repaired` record. A repaired snapshot
/// gets its own version because readers of version 1 ignore unknown fields:
/// they would list and restore it as if nothing had been dropped, while a
/// version they do not know makes them skip it and name it. Readers refuse
/// any version but these two.
pub const REPAIRED_SNAPSHOT_VERSION: u32 = 2;

/// How a backup chose its parent (and so how much it read); never how restore works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotKind {
    /// Every file was read (no parent, or `--full`).
    Full,
    /// Unchanged files were taken from the newest snapshot of the same source.
    Incremental,
    /// Unchanged files were taken from the newest full snapshot of the same source.
    Differential,
}

impl std::fmt::Display for SnapshotKind {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            SnapshotKind::Full => "full",
            SnapshotKind::Incremental => "incremental",
            SnapshotKind::Differential => "differential",
        })
    }
}

/// What a backup did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackupStats {
    /// Regular files in the snapshot, read or taken from the parent
    /// (unreadable ones are not counted).
    pub files: u64,
    /// Directories below the source directory (the source itself not counted).
    pub directories: u64,
    /// Symbolic links in the snapshot.
    pub symlinks: u64,
    /// Files not in the parent (or `--full`).
    pub files_new: u64,
    /// Files in the parent whose metadata changed, so they were read again.
    pub files_changed: u64,
    /// Files taken from the parent without reading.
    pub files_unmodified: u64,
    /// Logical size of all files in the snapshot.
    pub bytes_total: u64,
    /// Bytes read from the source.
    pub bytes_read: u64,
    /// Raw bytes of blobs that were new to the repository.
    pub bytes_added: u64,
    /// Bytes of packs written (what the repository grew by, before index and snapshot).
    pub bytes_stored: u64,
    /// Blobs (data chunks and trees) the repository did not have before.
    pub blobs_added: u64,
    /// Pack files published.
    pub packs_written: u64,
    /// Entries the backup's exclude patterns left out (a directory counts
    /// once, with what is below it unread); 0 in snapshots written before
    /// excludes existed.
    #[serde(default)]
    pub excluded: u64,
    /// Wall-clock seconds from the start of the backup until its index was
    /// written (the snapshot file is written after this is measured).
    pub duration_seconds: f64,
}

/// What `repair snapshots` dropped from a snapshot it rewrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairRecord {
    /// The snapshot this one was rewritten from.
    pub original: Id,
    /// When it was rewritten (RFC 3339, UTC).
    pub time: String,
    /// Every file and directory dropped, with why; a snapshot repaired
    /// twice carries the drops of both repairs.
    pub dropped: Vec<DroppedPath>,
}

/// One path a repair dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DroppedPath {
    /// Relative to the snapshot's root (`.` for the root itself), raw bytes
    /// as lossy UTF-8.
    pub path: String,
    /// Why: the lost blob and what made it lost (not indexed, its pack
    /// missing, it failed to read or verify); a directory whose tree was
    /// unreadable was kept as an empty directory.
    pub reason: String,
}

/// The contents of a snapshot file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Snapshot file format version: [`SNAPSHOT_VERSION`], or
    /// [`REPAIRED_SNAPSHOT_VERSION`] exactly when `repaired` is present; a
    /// reader refuses any other as unsupported.
    pub version: u32,
    /// When the backup started (RFC 3339, UTC, nanoseconds).
    pub time: String,
    /// Host name of the machine that made the backup, unless the backup
    /// named another; parent choice and retention group snapshots by it.
    pub host: String,
    /// Name (or numeric uid) of the user who ran the backup.
    pub user: String,
    /// Absolute path of the backed-up directory.
    pub source: String,
    /// Labels given at backup time, for selection (`latest:TAG`), filtering
    /// and retention; possibly empty.
    pub tags: Vec<String>,
    /// The snapshot unchanged files were taken from (`null` for a full
    /// backup, which had none).
    pub parent: Option<Id>,
    /// How the parent was chosen; restore ignores it (every tree is complete).
    pub kind: SnapshotKind,
    /// Id of the root tree blob: the listing of the source directory itself.
    pub tree: Id,
    /// True when some source files could not be read (they are absent from the tree).
    pub incomplete: bool,
    /// One message per source entry that could not be read (the first 1000).
    pub warnings: Vec<String>,
    /// What the backup read, stored and how long it took.
    pub stats: BackupStats,
    /// Name and version of the program that wrote the snapshot
    /// (`lsmvault 0.1.0`).
    pub program: String,
    /// The backup's exclude patterns (`backup --exclude/--exclude-file`),
    /// relative to the source directory, as given; absent when there were
    /// none. Restore ignores them: the tree simply lacks what they matched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
    /// Identity and last sequence number of the database the source held
    /// (absent for directories that are not an LSM database).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<crate::lsm::manifest::DatabaseState>,
    /// Present when `repair snapshots` wrote this snapshot in place of one
    /// that referenced lost data: what was dropped (the rest of the fields
    /// are the original's, `stats` included, except `tree`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repaired: Option<RepairRecord>,
    /// Present when `copy` wrote this snapshot: the id of the snapshot it
    /// was copied from, in its own repository — or, when that one was itself
    /// a copy, the id it recorded, so a snapshot keeps the id of the backup
    /// that made it along a chain of copies. A later `copy` skips a
    /// snapshot whose id (or own `original`) a destination snapshot records
    /// here. Everything else is the source's, except `tree` (and its file
    /// digests) when the two repositories compute blob ids differently, and
    /// `parent`, which names the destination's copy of the parent or is
    /// `null`. A reader that does not know the field loses nothing: the
    /// snapshot is complete in its repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<Id>,
}

impl Snapshot {
    /// The pretty-printed JSON of the snapshot file, before sealing; the file
    /// is named by the BLAKE3 hash of the bytes stored.
    pub fn encode(&self) -> Vec<u8> {
        // Plain data with string keys always serializes.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Parses a snapshot file's JSON (already opened when encrypted), refusing
    /// any version but [`SNAPSHOT_VERSION`] and [`REPAIRED_SNAPSHOT_VERSION`]
    /// (and a `repaired` record in the wrong one); `name` identifies it in errors.
    pub fn decode(name: &str, bytes: &[u8]) -> Result<Snapshot> {
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        let object = || format!("snapshot {name}");
        let version: VersionOnly = serde_json::from_slice(bytes)
            .map_err(|error| Error::corrupt(object(), error.to_string()))?;
        if version.version != SNAPSHOT_VERSION && version.version != REPAIRED_SNAPSHOT_VERSION {
            return Err(Error::UnsupportedVersion {
                object: object(),
                found: version.version,
                supported: REPAIRED_SNAPSHOT_VERSION,
            });
        }
        let snapshot: Snapshot = serde_json::from_slice(bytes)
            .map_err(|error| Error::corrupt(object(), error.to_string()))?;
        if snapshot.repaired.is_some() != (snapshot.version == REPAIRED_SNAPSHOT_VERSION) {
            return Err(Error::corrupt(
                object(),
                format!(
                    "version {} {} a repair record",
                    snapshot.version,
                    if snapshot.repaired.is_some() {
                        "carries"
                    } else {
                        "lacks"
                    }
                ),
            ));
        }
        Ok(snapshot)
    }

    /// The snapshot time (the epoch if the recorded text is not a time).
    pub fn timestamp(&self) -> Timestamp {
        Timestamp::parse_or_epoch(&self.time)
    }

    /// The snapshot time as a `SystemTime` (the epoch if unparsable).
    pub fn system_time(&self) -> SystemTime {
        self.timestamp().system_time()
    }
}

/// Formats a time as RFC 3339 UTC with nanoseconds (see [`Timestamp`]).
pub fn format_time(time: SystemTime) -> String {
    Timestamp::from(time).to_string()
}

/// A snapshot together with its id.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotEntry {
    /// The snapshot file's name under `snapshots/`: BLAKE3 of its stored
    /// (sealed, when encrypted) bytes.
    pub id: Id,
    /// The file's parsed content.
    pub snapshot: Snapshot,
}

/// Sorts snapshots oldest first; at equal times a repaired snapshot comes
/// after an unrepaired one (it keeps its original's time, and `latest`
/// should be the one that restores), then ties are broken by id, so the
/// order is total.
pub fn sort_by_time(snapshots: &mut [SnapshotEntry]) {
    snapshots.sort_by(|a, b| {
        a.snapshot
            .system_time()
            .cmp(&b.snapshot.system_time())
            .then(
                a.snapshot
                    .repaired
                    .is_some()
                    .cmp(&b.snapshot.repaired.is_some()),
            )
            .then(a.id.cmp(&b.id))
    });
}

/// Resolves a user's snapshot selector: a full id, a unique id prefix,
/// `latest`, or `latest:TAG`. `snapshots` must be sorted oldest first.
pub fn select<'a>(snapshots: &'a [SnapshotEntry], selector: &str) -> Result<&'a SnapshotEntry> {
    let not_found = || Error::SnapshotNotFound {
        selector: selector.to_string(),
    };
    if selector == "latest" {
        return snapshots.last().ok_or_else(not_found);
    }
    if let Some(tag) = selector.strip_prefix("latest:") {
        return snapshots
            .iter()
            .rev()
            .find(|entry| entry.snapshot.tags.iter().any(|candidate| candidate == tag))
            .ok_or_else(not_found);
    }
    let prefix = selector.to_ascii_lowercase();
    if prefix.is_empty() || !prefix.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    let matches: Vec<&SnapshotEntry> = snapshots
        .iter()
        .filter(|entry| entry.id.to_hex().starts_with(&prefix))
        .collect();
    match matches.as_slice() {
        [] => Err(not_found()),
        [only] => Ok(only),
        several => Err(Error::AmbiguousPrefix {
            prefix: selector.to_string(),
            candidates: several
                .iter()
                .map(|entry| entry.id.short())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// A snapshot of `/db` at `time` with `tags`, for unit tests.
#[cfg(test)]
pub(crate) fn test_snapshot(time: &str, tags: &[&str]) -> Snapshot {
    Snapshot {
        version: SNAPSHOT_VERSION,
        time: time.to_string(),
        host: "h".into(),
        user: "u".into(),
        source: "/db".into(),
        tags: tags.iter().map(|tag| tag.to_string()).collect(),
        parent: None,
        kind: SnapshotKind::Full,
        tree: Id([0; 32]),
        incomplete: false,
        warnings: vec![],
        stats: BackupStats::default(),
        program: "test".into(),
        excludes: vec![],
        database: None,
        repaired: None,
        original: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(time: &str, tags: &[&str]) -> Snapshot {
        test_snapshot(time, tags)
    }

    #[test]
    fn json_round_trip_and_version_check() {
        let original = snapshot("2026-11-23T14:32:05.000000001Z", &["nightly"]);
        let bytes = original.encode();
        assert_eq!(Snapshot::decode("x", &bytes).unwrap(), original);
        let future = String::from_utf8(bytes)
            .unwrap()
            .replace("\"version\": 1", "\"version\": 99");
        assert!(matches!(
            Snapshot::decode("x", future.as_bytes()),
            Err(Error::UnsupportedVersion { found: 99, .. })
        ));
        assert!(matches!(
            Snapshot::decode("x", b"{not json"),
            Err(Error::CorruptObject { .. })
        ));
    }

    #[test]
    fn excludes_are_optional_both_ways() {
        // A snapshot written before excludes existed reads with none.
        let old = snapshot("2026-11-23T14:32:05Z", &[]);
        let text = String::from_utf8(old.encode()).unwrap();
        assert!(!text.contains("\"excludes\""), "absent when empty: {text}");
        let without_count = text.replace("\"excluded\": 0,", "");
        assert_ne!(without_count, text);
        let read = Snapshot::decode("x", without_count.as_bytes()).unwrap();
        assert!(read.excludes.is_empty());
        assert_eq!(read.stats.excluded, 0);
        let mut new = old;
        new.excludes = vec!["LOG*".into(), "/archive".into()];
        new.stats.excluded = 3;
        assert_eq!(Snapshot::decode("x", &new.encode()).unwrap(), new);
    }

    #[test]
    fn the_copy_origin_is_optional_both_ways() {
        let old = snapshot("2026-11-23T14:32:05Z", &[]);
        let text = String::from_utf8(old.encode()).unwrap();
        assert!(!text.contains("\"original\""), "absent when none: {text}");
        assert_eq!(
            Snapshot::decode("x", text.as_bytes()).unwrap().original,
            None
        );
        let mut copied = old;
        copied.original = Some(Id([9; 32]));
        let text = String::from_utf8(copied.encode()).unwrap();
        assert!(text.contains("\"original\""));
        assert_eq!(Snapshot::decode("x", text.as_bytes()).unwrap(), copied);
    }

    #[test]
    fn a_repair_record_comes_with_its_own_version() {
        let mut repaired = snapshot("2026-11-23T14:32:05Z", &[]);
        repaired.version = REPAIRED_SNAPSHOT_VERSION;
        repaired.repaired = Some(RepairRecord {
            original: Id([1; 32]),
            time: "2026-11-24T00:00:00Z".into(),
            dropped: vec![DroppedPath {
                path: "db/000012.sst".into(),
                reason: "blob lost".into(),
            }],
        });
        assert_eq!(Snapshot::decode("x", &repaired.encode()).unwrap(), repaired);
        // A record in a version 1 snapshot, or version 2 without one: refused.
        let mut smuggled = repaired.clone();
        smuggled.version = SNAPSHOT_VERSION;
        let mut bare = snapshot("2026-11-23T14:32:05Z", &[]);
        bare.version = REPAIRED_SNAPSHOT_VERSION;
        for wrong in [smuggled, bare] {
            assert!(matches!(
                Snapshot::decode("x", &wrong.encode()),
                Err(Error::CorruptObject { .. })
            ));
        }
    }

    #[test]
    fn selectors() {
        let mut list = vec![
            SnapshotEntry {
                id: Id([0xab; 32]),
                snapshot: snapshot("2026-01-02T00:00:00Z", &["a"]),
            },
            SnapshotEntry {
                id: Id([0xac; 32]),
                snapshot: snapshot("2026-01-03T00:00:00Z", &[]),
            },
            SnapshotEntry {
                id: Id([0x12; 32]),
                snapshot: snapshot("2026-01-01T00:00:00Z", &["a"]),
            },
        ];
        sort_by_time(&mut list);
        assert_eq!(select(&list, "latest").unwrap().id, Id([0xac; 32]));
        assert_eq!(select(&list, "latest:a").unwrap().id, Id([0xab; 32]));
        assert_eq!(select(&list, "12").unwrap().id, Id([0x12; 32]));
        assert_eq!(select(&list, "ABAB").unwrap().id, Id([0xab; 32]));
        assert!(matches!(
            select(&list, "a"),
            Err(Error::AmbiguousPrefix { .. })
        ));
        assert!(matches!(
            select(&list, "ff"),
            Err(Error::SnapshotNotFound { .. })
        ));
        assert!(matches!(
            select(&list, "latest:zz"),
            Err(Error::SnapshotNotFound { .. })
        ));
        assert!(matches!(
            select(&list, "../x"),
            Err(Error::SnapshotNotFound { .. })
        ));
        assert!(matches!(
            select(&[], "latest"),
            Err(Error::SnapshotNotFound { .. })
        ));
    }
}
