//! WAL retention: which `wal/` objects (archived segment versions and
//! restore points) `forget` removes because no kept snapshot can use them.
//!
//! A point-in-time restore starts from a snapshot S and replays the WAL after
//! S's last sequence number. So for each database the cut is a sequence
//! number at or before which no promised recovery replays anything:
//! - without a PITR reach (`keep_pitr`), the smallest last sequence among the
//!   database's kept snapshots: every kept snapshot's window stays whole;
//! - with one (duration D), the sequence of the newest kept snapshot taken at
//!   or before (newest archived write − D): every instant within D of the
//!   newest archived write maps to a sequence at or after that snapshot's,
//!   so its base snapshot and replay lie after the cut. When no kept
//!   snapshot is that old, the cut is as without a reach (the oldest kept
//!   snapshot's window, by sequence).
//!
//! Then a segment goes (all its versions together) when every sequence it
//! holds in any version is at or before the cut (a segment straddling the
//! cut stays); a segment without write batches goes when it lies before the
//! cut by number (below every kept segment with batches; when none is kept,
//! below a removed one, so the live empty segment stays); a
//! restore point goes when its sequence is below the cut (one exactly at the
//! cut names the cut snapshot's own state, which stays restorable).
//!
//! Invariants: a database with no kept snapshot recording its sequence keeps
//! its whole archive (nothing to judge it by); when any snapshot file is
//! damaged nothing is removed (its database and sequence are unknown, and it
//! may be a newer-version snapshot whose window must survive); damaged WAL
//! objects are never judged (their sequences are unknown) and stay.
//! Deletion order (restore points, then segments oldest first) leaves, if
//! killed, an archive that is still gap-free after the cut. Planning is pure
//! (no I/O) so the rule is property-tested on random timelines.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::backend::ObjectKind;
use crate::error::Result;
use crate::format::snapshot::SnapshotEntry;
use crate::format::wal_object::{SegmentRecord, WalObject};
use crate::id::Id;
use crate::repo::{DamagedObject, Repository};
use crate::time::Timestamp;

/// A kept snapshot as the WAL retention rule sees it.
#[derive(Debug, Clone)]
pub struct KeptSnapshot {
    /// The snapshot's id.
    pub id: Id,
    /// The database it is a snapshot of.
    pub database_id: String,
    /// The last sequence number it holds: replay starts after it.
    pub sequence: u64,
    /// When it was taken.
    pub time: SystemTime,
}

impl KeptSnapshot {
    /// The snapshot as the rule sees it; `None` when it records no database
    /// id or sequence (it opens no point-in-time window).
    pub fn from_entry(entry: &SnapshotEntry) -> Option<KeptSnapshot> {
        let state = entry.snapshot.database.as_ref()?;
        Some(KeptSnapshot {
            id: entry.id,
            database_id: state.id.clone()?,
            sequence: state.last_sequence?,
            time: entry.snapshot.system_time(),
        })
    }
}

/// What WAL retention removed (or, in a dry run, would remove) from the
/// archive of one database.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseWalRetention {
    /// The database whose archive this is.
    pub database_id: String,
    /// The new earliest recoverable sequence number: the cut. Every WAL
    /// record holding only sequences at or before it is removed. `None`: the
    /// archive is kept whole (see `reason`).
    pub earliest_sequence: Option<u64>,
    /// When the snapshot setting the cut was taken: the earliest instant a
    /// point-in-time restore still reaches.
    pub earliest_time: Option<Timestamp>,
    /// The kept snapshot setting the cut.
    pub cut_snapshot: Option<Id>,
    /// Why the cut is where it is, or why the archive is kept whole.
    pub reason: String,
    /// File names of the segments removed (every archived version of each).
    pub segments_removed: Vec<String>,
    /// How many segment versions (records) that is.
    pub versions_removed: usize,
    /// Names of the restore points removed.
    pub restore_points_removed: Vec<String>,
    /// Bytes of archived WAL the removed segments held (newest version of each).
    pub bytes_removed: u64,
    /// The `wal/` objects to delete, in deletion order.
    #[serde(skip)]
    pub(crate) objects: Vec<Id>,
}

/// What WAL retention did (or would do) to the whole archive.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WalRetentionReport {
    /// Every database with archived WAL objects, by id.
    pub databases: Vec<DatabaseWalRetention>,
    /// Set when nothing was judged at all, saying why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// WAL objects that could not be read: never judged, kept.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub damaged: Vec<DamagedObject>,
}

impl WalRetentionReport {
    /// Every `wal/` object to delete, database by database in deletion order.
    fn objects(&self) -> impl Iterator<Item = &Id> {
        self.databases
            .iter()
            .flat_map(|database| database.objects.iter())
    }
}

/// The versions of one segment number, with what they hold together.
#[derive(Default)]
struct SegmentVersions<'a> {
    versions: Vec<(Id, &'a SegmentRecord)>,
}

impl SegmentVersions<'_> {
    /// The last sequence any version holds (`None`: no write batch in any).
    fn last_sequence(&self) -> Option<u64> {
        self.versions
            .iter()
            .filter_map(|(_, record)| record.last_sequence)
            .max()
    }

    fn file_name(&self) -> String {
        self.versions
            .first()
            .map(|(_, record)| record.file_name.clone())
            .unwrap_or_default()
    }

    fn size(&self) -> u64 {
        self.versions
            .iter()
            .map(|(_, record)| record.size)
            .max()
            .unwrap_or(0)
    }
}

/// The kept snapshot whose sequence is the cut of one database (see the
/// module docs), with the reason in words.
fn cut_snapshot<'a>(
    kept: &[&'a KeptSnapshot],
    newest_write: Option<SystemTime>,
    keep_pitr: Option<Duration>,
) -> Option<(&'a KeptSnapshot, String)> {
    let lowest = kept
        .iter()
        .copied()
        .min_by_key(|snapshot| snapshot.sequence)?;
    let (Some(reach), Some(newest)) = (keep_pitr, newest_write) else {
        return Some((
            lowest,
            "the oldest kept snapshot's window starts here".to_string(),
        ));
    };
    let reach_text = humantime::format_duration(reach);
    // The threshold before which recovery need not reach; when no kept
    // snapshot is that old, every kept window stays (the lowest sequence,
    // not the oldest time: safe even when clocks disagree with sequences).
    let threshold = newest.checked_sub(reach);
    let chosen = kept
        .iter()
        .copied()
        .filter(|snapshot| threshold.is_some_and(|threshold| snapshot.time <= threshold))
        .max_by_key(|snapshot| (snapshot.time, snapshot.sequence));
    let threshold_text = threshold.map_or("the epoch".to_string(), |threshold| {
        Timestamp::from(threshold).to_string()
    });
    Some(match chosen {
        Some(snapshot) => (
            snapshot,
            format!(
                "--keep-pitr {reach_text}: the newest kept snapshot at or before {threshold_text}"
            ),
        ),
        None => (
            lowest,
            format!(
                "--keep-pitr {reach_text}: no kept snapshot is as old as {threshold_text}, so every kept window stays"
            ),
        ),
    })
}

/// Decides what to remove from every database's archive. Pure: `objects`
/// are the readable `wal/` objects, `kept` the snapshots that stay.
pub fn plan(
    objects: &[(Id, WalObject)],
    kept: &[KeptSnapshot],
    keep_pitr: Option<Duration>,
) -> Vec<DatabaseWalRetention> {
    let mut databases: BTreeMap<&str, Vec<&(Id, WalObject)>> = BTreeMap::new();
    for object in objects {
        let database = match &object.1 {
            WalObject::Segment(record) => record.database_id.as_str(),
            WalObject::RestorePoint(point) => point.database_id.as_str(),
        };
        databases.entry(database).or_default().push(object);
    }
    databases
        .into_iter()
        .map(|(database, objects)| {
            let kept: Vec<&KeptSnapshot> = kept
                .iter()
                .filter(|snapshot| snapshot.database_id == database)
                .collect();
            plan_database(database, &objects, &kept, keep_pitr)
        })
        .collect()
}

/// [`plan`] for one database's objects and kept snapshots.
fn plan_database(
    database: &str,
    objects: &[&(Id, WalObject)],
    kept: &[&KeptSnapshot],
    keep_pitr: Option<Duration>,
) -> DatabaseWalRetention {
    let mut segments: BTreeMap<u64, SegmentVersions> = BTreeMap::new();
    for (id, object) in objects {
        if let WalObject::Segment(record) = object {
            let entry = segments.entry(record.segment).or_default();
            entry.versions.push((*id, record));
        }
    }
    let newest_write = segments
        .values()
        .flat_map(|segment| segment.versions.iter())
        .filter(|(_, record)| record.last_sequence.is_some())
        .filter_map(|(_, record)| humantime::parse_rfc3339(&record.archived_at).ok())
        .max();
    let mut report = DatabaseWalRetention {
        database_id: database.to_string(),
        earliest_sequence: None,
        earliest_time: None,
        cut_snapshot: None,
        reason: "no kept snapshot records this database's sequence: archive kept whole".into(),
        segments_removed: Vec::new(),
        versions_removed: 0,
        restore_points_removed: Vec::new(),
        bytes_removed: 0,
        objects: Vec::new(),
    };
    let Some((snapshot, reason)) = cut_snapshot(kept, newest_write, keep_pitr) else {
        return report;
    };
    let cut = snapshot.sequence;
    report.earliest_sequence = Some(cut);
    report.earliest_time = Some(Timestamp::from(snapshot.time));
    report.cut_snapshot = Some(snapshot.id);
    report.reason = reason;
    for (id, object) in objects {
        if let WalObject::RestorePoint(point) = object {
            if point.sequence < cut {
                report.restore_points_removed.push(point.name.clone());
                report.objects.push(*id);
            }
        }
    }
    for segment in removed_segments(&segments, cut) {
        report.segments_removed.push(segment.file_name());
        report.versions_removed += segment.versions.len();
        report.bytes_removed += segment.size();
        report
            .objects
            .extend(segment.versions.iter().map(|(id, _)| *id));
    }
    report
}

/// The segments to remove, oldest first: those whose every sequence is at
/// or before `cut`, and the batchless ones numbered below every kept segment
/// with batches (when none is kept: below a removed one).
fn removed_segments<'s, 'a>(
    segments: &'s BTreeMap<u64, SegmentVersions<'a>>,
    cut: u64,
) -> Vec<&'s SegmentVersions<'a>> {
    let before_cut =
        |segment: &SegmentVersions| segment.last_sequence().is_some_and(|last| last <= cut);
    let last_removed = segments
        .iter()
        .filter(|(_, segment)| before_cut(segment))
        .map(|(number, _)| *number)
        .max();
    let first_kept = segments
        .iter()
        .filter(|(_, segment)| segment.last_sequence().is_some_and(|last| last > cut))
        .map(|(number, _)| *number)
        .min();
    segments
        .iter()
        .filter(|(number, segment)| match segment.last_sequence() {
            Some(last) => last <= cut,
            None => match first_kept {
                Some(kept) => **number < kept,
                // Nothing kept after the cut: the live (empty) segment
                // after the last removed one stays.
                None => last_removed.is_some_and(|removed| **number < removed),
            },
        })
        .map(|(_, segment)| segment)
        .collect()
}

impl Repository {
    /// Plans WAL retention against the snapshots that stay (`kept`), given
    /// whether any snapshot file is damaged; deletes the planned objects
    /// unless `dry_run`. The caller holds the exclusive lock when not a dry
    /// run, and has already removed the forgotten snapshots' files.
    pub(crate) fn forget_wal(
        &self,
        kept: &[SnapshotEntry],
        damaged_snapshots: &[DamagedObject],
        keep_pitr: Option<Duration>,
        dry_run: bool,
    ) -> Result<WalRetentionReport> {
        let (objects, damaged) = self.wal_objects_checked()?;
        if objects.is_empty() && damaged.is_empty() {
            return Ok(WalRetentionReport::default()); // no archive: nothing to say
        }
        if !damaged_snapshots.is_empty() {
            return Ok(WalRetentionReport {
                databases: Vec::new(),
                skipped: Some(format!(
                    "{} damaged snapshot file(s): their databases and sequences are unknown, so the WAL archive is kept whole until they are repaired or forgotten",
                    damaged_snapshots.len()
                )),
                damaged,
            });
        }
        let kept: Vec<KeptSnapshot> = kept.iter().filter_map(KeptSnapshot::from_entry).collect();
        let report = WalRetentionReport {
            databases: plan(&objects, &kept, keep_pitr),
            skipped: None,
            damaged,
        };
        if !dry_run {
            for id in report.objects() {
                self.backend().delete(ObjectKind::Wal, &id.to_hex())?;
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::snapshot::format_time;
    use crate::format::wal_object::RestorePoint;
    use proptest::prelude::*;
    use std::time::UNIX_EPOCH;

    const DB: &str = "db";

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
    }

    fn segment(number: u64, sequences: Option<(u64, u64)>, archived: u64) -> WalObject {
        WalObject::Segment(SegmentRecord {
            database_id: DB.into(),
            segment: number,
            file_name: format!("{number:06}.log"),
            size: sequences.map_or(0, |(first, last)| (last - first + 1) * 100),
            digest: Id::of(&number.to_le_bytes()),
            chunks: Vec::new(),
            first_sequence: sequences.map(|(first, _)| first),
            last_sequence: sequences.map(|(_, last)| last),
            batches: sequences.map_or(0, |(first, last)| last - first + 1),
            readable_end: 0,
            holes: Vec::new(),
            tail: "clean".into(),
            archived_at: format_time(at(archived)),
            host: "h".into(),
        })
    }

    fn point(name: &str, sequence: u64) -> WalObject {
        WalObject::RestorePoint(RestorePoint {
            name: name.into(),
            database_id: DB.into(),
            sequence,
            time: format_time(at(0)),
            host: "h".into(),
        })
    }

    fn kept(sequence: u64, time: u64) -> KeptSnapshot {
        KeptSnapshot {
            id: Id::of(&sequence.to_le_bytes()),
            database_id: DB.into(),
            sequence,
            time: at(time),
        }
    }

    fn with_ids(objects: Vec<WalObject>) -> Vec<(Id, WalObject)> {
        objects
            .into_iter()
            .enumerate()
            .map(|(index, object)| (Id::of(&(index as u64).to_be_bytes()), object))
            .collect()
    }

    #[test]
    fn a_straddling_segment_stays_and_batchless_ones_go_with_the_segments_before_the_cut() {
        let objects = with_ids(vec![
            segment(3, Some((1, 10)), 10),
            segment(4, None, 11),
            segment(5, Some((11, 20)), 20),
            segment(6, Some((21, 30)), 30),
            segment(7, None, 31),
            point("early", 10),
            point("at-cut", 15),
            point("late", 25),
        ]);
        let report = plan(&objects, &[kept(15, 15), kept(28, 28)], None);
        let database = &report[0];
        assert_eq!(database.earliest_sequence, Some(15));
        assert_eq!(database.segments_removed, ["000003.log", "000004.log"]);
        assert_eq!(database.restore_points_removed, ["early"]);
        assert_eq!(database.bytes_removed, 1000);
    }

    #[test]
    fn no_kept_snapshot_keeps_the_archive_whole() {
        let objects = with_ids(vec![segment(3, Some((1, 10)), 10)]);
        let report = plan(&objects, &[], None);
        assert_eq!(report[0].earliest_sequence, None);
        assert!(report[0].objects.is_empty());
        assert!(report[0].reason.contains("no kept snapshot"));
    }

    #[test]
    fn keep_pitr_cuts_at_the_newest_snapshot_old_enough() {
        let objects = with_ids(vec![
            segment(1, Some((1, 10)), 1_000),
            segment(2, Some((11, 20)), 2_000),
            segment(3, Some((21, 30)), 3_000),
        ]);
        let snapshots = [kept(5, 500), kept(15, 1_500), kept(25, 2_500)];
        // Newest write at 3000, reach 1200 s: the threshold is 1800, so the
        // snapshot at 1500 (sequence 15) sets the cut.
        let report = plan(&objects, &snapshots, Some(Duration::from_secs(1_200)));
        assert_eq!(report[0].earliest_sequence, Some(15));
        assert_eq!(report[0].segments_removed, ["000001.log"]);
        // A reach longer than the history: from the oldest kept snapshot.
        let report = plan(&objects, &snapshots, Some(Duration::from_secs(100_000)));
        assert_eq!(report[0].earliest_sequence, Some(5));
        assert!(report[0].objects.is_empty());
    }

    /// The sequences of each version of a segment (`None`: no batch).
    type Versions = Vec<Option<(u64, u64)>>;

    /// One random timeline: contiguous segments (some batchless, several
    /// versions each), snapshots along it, some kept, and restore points.
    #[derive(Debug, Clone)]
    struct Timeline {
        /// (segment number, sequences of each version, archive time of each)
        segments: Vec<(u64, Versions, u64)>,
        snapshots: Vec<(u64, u64, bool)>,
        points: Vec<u64>,
        keep_pitr: Option<u64>,
    }

    fn timeline() -> impl Strategy<Value = Timeline> {
        let segments = prop::collection::vec((0u64..3, 0u64..20, 1usize..4), 1..12);
        let snapshots = prop::collection::vec((any::<u16>(), any::<bool>()), 0..8);
        let points = prop::collection::vec(any::<u16>(), 0..5);
        (segments, snapshots, points, prop::option::of(0u64..400)).prop_map(
            |(shape, snapshot_picks, point_picks, keep_pitr)| {
                let (mut next, mut number, mut time) = (1u64, 0u64, 0u64);
                let mut segments = Vec::new();
                for (skip, batches, versions) in shape {
                    number += 1 + skip;
                    time += 10;
                    let full = (batches > 2).then(|| (next, next + batches - 1));
                    // Earlier versions hold a prefix of the full range.
                    let steps = (1..=versions)
                        .map(|step| {
                            full.map(|(first, last)| {
                                (
                                    first,
                                    first + (last - first) * step as u64 / versions as u64,
                                )
                            })
                        })
                        .collect();
                    next += if full.is_some() { batches } else { 0 };
                    segments.push((number, steps, time));
                }
                let newest = next.max(2) - 1;
                let snapshots = snapshot_picks
                    .into_iter()
                    .map(|(pick, keep)| {
                        let sequence = u64::from(pick) % (newest + 1);
                        (sequence, sequence * 10 / newest.max(1) * 10, keep)
                    })
                    .collect();
                let points = point_picks
                    .into_iter()
                    .map(|pick| u64::from(pick) % (newest + 1))
                    .collect();
                Timeline {
                    segments,
                    snapshots,
                    points,
                    keep_pitr,
                }
            },
        )
    }

    impl Timeline {
        fn objects(&self) -> Vec<(Id, WalObject)> {
            let mut objects = Vec::new();
            for (number, versions, time) in &self.segments {
                for (step, sequences) in versions.iter().enumerate() {
                    objects.push(segment(*number, *sequences, time + step as u64));
                }
            }
            for (index, sequence) in self.points.iter().enumerate() {
                objects.push(point(&format!("p{index}"), *sequence));
            }
            with_ids(objects)
        }

        fn kept(&self) -> Vec<KeptSnapshot> {
            self.snapshots
                .iter()
                .filter(|(_, _, keep)| *keep)
                .map(|(sequence, time, _)| kept(*sequence, *time))
                .collect()
        }
    }

    /// The sequence a time maps to, as point-in-time restore maps it.
    fn sequence_at(objects: &[(Id, WalObject)], kept: &[KeptSnapshot], time: SystemTime) -> u64 {
        let from_wal = objects.iter().filter_map(|(_, object)| match object {
            WalObject::Segment(record) => {
                let archived = humantime::parse_rfc3339(&record.archived_at).ok()?;
                (archived <= time).then_some(record.last_sequence?)
            }
            _ => None,
        });
        let from_snapshots = kept
            .iter()
            .filter(|snapshot| snapshot.time <= time)
            .map(|snapshot| snapshot.sequence);
        from_wal.chain(from_snapshots).max().unwrap_or(0)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever the timeline, no removed record is one a promised
        /// restore needs: every sequence from the cut on (and, with a reach,
        /// every instant within it) still has its base snapshot and every
        /// segment between that base and the target; every restore point at
        /// or after the cut stays.
        #[test]
        fn no_removed_record_is_needed_by_a_promised_restore(timeline in timeline()) {
            let objects = timeline.objects();
            let kept = timeline.kept();
            let reach = timeline.keep_pitr.map(Duration::from_secs);
            let report = plan(&objects, &kept, reach);
            prop_assert_eq!(report.len(), 1);
            let database = &report[0];
            let removed: Vec<&Id> = database.objects.iter().collect();
            let Some(cut) = database.earliest_sequence else {
                prop_assert!(kept.is_empty());
                prop_assert!(removed.is_empty());
                return Ok(());
            };
            let newest = objects.iter().filter_map(|(_, object)| match object {
                WalObject::Segment(record) => record.last_sequence,
                _ => None,
            }).max().unwrap_or(0);
            let mut promised: Vec<u64> = (cut..=newest.max(cut)).collect();
            if let Some(reach) = reach {
                let newest_write = at(timeline.segments.iter().map(|(_, v, t)| t + v.len() as u64).max().unwrap_or(0));
                let threshold = newest_write.checked_sub(reach).unwrap_or(UNIX_EPOCH);
                for second in 0..2_000u64 {
                    let time = at(second);
                    if time >= threshold {
                        let sequence = sequence_at(&objects, &kept, time);
                        if !kept.iter().any(|snapshot| snapshot.sequence <= sequence) {
                            continue; // no base snapshot: never recoverable
                        }
                        prop_assert!(sequence >= cut, "instant {second} maps to {sequence} before the cut {cut}");
                    }
                }
            } else {
                prop_assert_eq!(Some(cut), kept.iter().map(|s| s.sequence).min());
            }
            promised.retain(|target| kept.iter().any(|s| s.sequence <= *target));
            for target in promised {
                let base = kept.iter().map(|s| s.sequence).filter(|s| *s <= target).max().unwrap_or(0);
                for (id, object) in &objects {
                    if let WalObject::Segment(record) = object {
                        let needed = record.first_sequence.zip(record.last_sequence)
                            .is_some_and(|(first, last)| last > base && first <= target);
                        prop_assert!(!(needed && removed.contains(&id)),
                            "segment {} needed for {target} from {base} but removed", record.file_name);
                    }
                }
            }
            for (id, object) in &objects {
                match object {
                    WalObject::RestorePoint(point) => {
                        prop_assert_eq!(removed.contains(&id), point.sequence < cut);
                    }
                    WalObject::Segment(record) => {
                        // Minimal too: every version of a segment entirely
                        // before the cut goes.
                        let all_before = objects.iter().all(|(_, other)| match other {
                            WalObject::Segment(r) if r.segment == record.segment =>
                                r.last_sequence.is_some_and(|last| last <= cut),
                            _ => true,
                        });
                        if all_before {
                            prop_assert!(removed.contains(&id));
                        }
                    }
                }
            }
        }
    }
}
