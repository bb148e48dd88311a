//! Retention policies: which snapshots `forget` keeps, and why.
//!
//! The semantics are restic's `forget`, the most widely known: snapshots are
//! grouped — by default by database identity (the snapshot's `database.id`),
//! so the nightly checkpoints of one database taken into dated directories
//! (`/data/ckpt/2026-12-01`, `/data/ckpt/2026-12-02`) form one group, and
//! snapshots that record no identity by host and source as restic does —
//! and within a group,
//! walking from newest to oldest, each rule keeps the newest snapshot of each
//! of its next N periods (hour, day, ISO week, month, year — in UTC, so there
//! are no DST surprises); `--keep-last N` keeps the newest N; `--keep-within D`
//! keeps everything within D of the group's newest snapshot; `--keep-tag T`
//! keeps every snapshot tagged T. A snapshot is kept if any rule keeps it, and
//! the report says which rules did.
//!
//! Everything here is pure (no I/O) so every rule is unit-tested on synthetic
//! times.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::snapshot::SnapshotEntry;
use crate::id::Id;
use crate::time::Timestamp;

/// Which snapshots a policy applies to: the filter every snapshot-listing
/// command shares, defined with the snapshots it selects.
pub use crate::repo::snapshot_filter::SnapshotFilter;

/// What to keep. Empty means "no rule", which `forget` refuses.
///
/// Every rule applies to one group, walked from newest to oldest; `None`
/// switches a rule off, while `Some(0)` is a rule that keeps nothing. A
/// period rule counts only periods that hold a snapshot (empty ones do not
/// use up N) and keeps the newest snapshot of each.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetentionPolicy {
    /// Keep the newest N snapshots.
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the N most recent hours (UTC).
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the N most recent days (UTC).
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the N most recent ISO weeks
    /// (Monday first, UTC).
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the N most recent calendar
    /// months (UTC).
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the N most recent calendar years
    /// (UTC).
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot at most this much older than the group's newest
    /// (not than now: a group that stopped receiving backups keeps its last
    /// ones); see [`parse_duration`].
    pub keep_within: Option<Duration>,
    /// Keep every snapshot carrying any of these tags.
    pub keep_tags: Vec<String>,
}

impl RetentionPolicy {
    /// Whether no rule is set (every field at its default), so the policy
    /// would keep nothing.
    pub fn is_empty(&self) -> bool {
        *self == RetentionPolicy::default()
    }
}

/// How snapshots are grouped before a policy applies. The default groups
/// by database identity and host (falling back to host and source): a
/// clone restored on another host keeps its source's identity, and one
/// host's policy must never remove the other's snapshots. With nothing
/// set, every filtered snapshot forms one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupBy {
    /// Snapshots of different databases (the snapshot file's `database.id`)
    /// fall into different groups, whatever their directories; a snapshot
    /// that records no identity is grouped by host and source instead.
    pub database: bool,
    /// Snapshots of different hosts (the snapshot file's `host`) fall into
    /// different groups.
    pub host: bool,
    /// Snapshots of different sources (the snapshot file's `source` path)
    /// fall into different groups.
    pub source: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        GroupBy {
            database: true,
            host: true,
            source: false,
        }
    }
}

impl GroupBy {
    /// Parses a comma-separated list of `database`, `host`, `source`, or `none`.
    pub fn parse(text: &str) -> Result<GroupBy> {
        let mut group = GroupBy {
            database: false,
            host: false,
            source: false,
        };
        for part in text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
        {
            match part {
                "database" => group.database = true,
                "host" => group.host = true,
                "source" => group.source = true,
                "none" => {}
                other => {
                    return Err(Error::InvalidArgument(format!(
                        "grouping {other:?}: expected database, host, source, or none"
                    )))
                }
            }
        }
        Ok(group)
    }

    /// The label of the group a snapshot falls into, e.g. `database
    /// 3f2a…`, `host db-1, source /db`, or `all snapshots` when grouping by
    /// nothing; snapshots with equal labels form one group.
    pub fn key(&self, entry: &SnapshotEntry) -> String {
        let identity = entry
            .snapshot
            .database
            .as_ref()
            .and_then(|state| state.id.as_deref());
        let mut parts = Vec::new();
        match (self.database, identity) {
            (true, Some(id)) => parts.push(format!("database {id}")),
            // No identity: the directory is the best name of the database.
            (true, None) if !self.host || !self.source => {
                return GroupBy {
                    database: false,
                    host: true,
                    source: true,
                }
                .key(entry)
            }
            _ => {}
        }
        if self.host {
            parts.push(format!("host {}", entry.snapshot.host));
        }
        if self.source {
            parts.push(format!("source {}", entry.snapshot.source));
        }
        if parts.is_empty() {
            "all snapshots".to_string()
        } else {
            parts.join(", ")
        }
    }
}

/// The decision for one snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// The snapshot's id (the name of its file under `snapshots/`).
    pub id: Id,
    /// The snapshot's `time` field.
    pub time: Timestamp,
    /// Whether any rule keeps the snapshot; `forget` removes it otherwise.
    pub keep: bool,
    /// Rules that keep it, e.g. `["last", "daily"]`.
    pub reasons: Vec<String>,
}

/// Decisions for one group, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct GroupDecision {
    /// The group's label, from [`GroupBy::key`].
    pub group: String,
    /// One decision per snapshot of the group, newest first.
    pub snapshots: Vec<Decision>,
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Calendar buckets of a time (UTC).
struct Buckets {
    hour: i64,
    day: i64,
    week: i64,
    month: i64,
    year: i64,
}

fn buckets(time: SystemTime) -> Buckets {
    let seconds = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_secs() as i64,
        Err(before) => -(before.duration().as_secs() as i64),
    };
    let days = seconds.div_euclid(86_400);
    let (year, month, _) = civil_from_days(days);
    Buckets {
        hour: seconds.div_euclid(3600),
        day: days,
        // 1970-01-01 was a Thursday: shifting by 3 makes weeks start on Monday (ISO).
        week: (days + 3).div_euclid(7),
        month: year * 12 + i64::from(month) - 1,
        year,
    }
}

/// Applies `policy` to one group; `group` must be sorted newest first.
pub fn decide(group: &[SnapshotEntry], policy: &RetentionPolicy) -> Vec<Decision> {
    struct Rule {
        name: &'static str,
        remaining: u32,
        last: Option<i64>,
        bucket: fn(&Buckets, usize) -> i64,
    }
    let mut rules: Vec<Rule> = [
        (
            "last",
            policy.keep_last,
            (|_, index| index as i64) as fn(&Buckets, usize) -> i64,
        ),
        ("hourly", policy.keep_hourly, |b, _| b.hour),
        ("daily", policy.keep_daily, |b, _| b.day),
        ("weekly", policy.keep_weekly, |b, _| b.week),
        ("monthly", policy.keep_monthly, |b, _| b.month),
        ("yearly", policy.keep_yearly, |b, _| b.year),
    ]
    .into_iter()
    .filter_map(|(name, count, bucket)| {
        count.map(|remaining| Rule {
            name,
            remaining,
            last: None,
            bucket,
        })
    })
    .collect();
    let newest = group.first().map(|entry| entry.snapshot.system_time());
    group
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let time = entry.snapshot.system_time();
            let calendar = buckets(time);
            let mut reasons = Vec::new();
            for tag in &policy.keep_tags {
                if entry.snapshot.tags.contains(tag) {
                    reasons.push(format!("tag {tag}"));
                }
            }
            for rule in &mut rules {
                if rule.remaining == 0 {
                    continue;
                }
                let value = (rule.bucket)(&calendar, index);
                if rule.last != Some(value) {
                    rule.last = Some(value);
                    rule.remaining -= 1;
                    reasons.push(rule.name.to_string());
                }
            }
            if let (Some(within), Some(newest)) = (policy.keep_within, newest) {
                if newest.duration_since(time).unwrap_or_default() <= within {
                    reasons.push("within".to_string());
                }
            }
            Decision {
                id: entry.id,
                time: entry.snapshot.timestamp(),
                keep: !reasons.is_empty(),
                reasons,
            }
        })
        .collect()
}

/// Groups the snapshots that match `filter` and decides each group.
/// `snapshots` may be in any order.
pub fn decide_all(
    snapshots: &[SnapshotEntry],
    filter: &SnapshotFilter,
    group_by: GroupBy,
    policy: &RetentionPolicy,
) -> Vec<GroupDecision> {
    let mut groups: BTreeMap<String, Vec<SnapshotEntry>> = BTreeMap::new();
    for entry in snapshots.iter().filter(|entry| filter.matches(entry)) {
        groups
            .entry(group_by.key(entry))
            .or_default()
            .push(entry.clone());
    }
    groups
        .into_iter()
        .map(|(group, mut entries)| {
            crate::format::snapshot::sort_by_time(&mut entries);
            entries.reverse();
            GroupDecision {
                group,
                snapshots: decide(&entries, policy),
            }
        })
        .collect()
}

/// Parses a duration like `30d`, `12h`, `2w`, `1y6m`: y = 365 days, m = 30
/// days, w = 7 days, d = days, h = hours.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let invalid = || {
        Error::InvalidArgument(format!(
            "duration {text:?}: expected numbers with units y, m, w, d, h (e.g. 30d, 1y6m, 12h)"
        ))
    };
    let mut total: u64 = 0;
    let mut number = String::new();
    for character in text.trim().chars() {
        if character.is_ascii_digit() {
            number.push(character);
            continue;
        }
        let value: u64 = number.parse().map_err(|_| invalid())?;
        number.clear();
        let hours = match character {
            'y' => 365 * 24,
            'm' => 30 * 24,
            'w' => 7 * 24,
            'd' => 24,
            'h' => 1,
            _ => return Err(invalid()),
        };
        total = value
            .checked_mul(hours * 3600)
            .and_then(|seconds| total.checked_add(seconds))
            .ok_or_else(invalid)?;
    }
    if !number.is_empty() || total == 0 {
        return Err(invalid());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::snapshot::{Snapshot, SnapshotKind};
    use crate::id::Id;

    fn decide_unfiltered(
        all: &[SnapshotEntry],
        group_by: GroupBy,
        policy: &RetentionPolicy,
    ) -> Vec<GroupDecision> {
        decide_all(all, &SnapshotFilter::default(), group_by, policy)
    }

    fn entry(time: &str, tags: &[&str], seed: u8) -> SnapshotEntry {
        SnapshotEntry {
            id: Id([seed; 32]),
            snapshot: Snapshot {
                kind: SnapshotKind::Incremental,
                ..crate::format::snapshot::test_snapshot(time, tags)
            },
        }
    }

    /// Snapshots at the given times (newest first, as `decide` expects).
    fn series(times: &[&str]) -> Vec<SnapshotEntry> {
        times
            .iter()
            .enumerate()
            .map(|(index, time)| entry(time, &[], index as u8))
            .collect()
    }

    fn kept(decisions: &[Decision]) -> Vec<usize> {
        decisions
            .iter()
            .enumerate()
            .filter(|(_, decision)| decision.keep)
            .map(|(index, _)| index)
            .collect()
    }

    #[test]
    fn calendar_conversion() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        let monday = buckets(humantime::parse_rfc3339("2026-11-23T00:00:00Z").unwrap());
        let sunday = buckets(humantime::parse_rfc3339("2026-11-22T23:59:59Z").unwrap());
        assert_eq!(monday.week, sunday.week + 1, "ISO weeks start on Monday");
    }

    #[test]
    fn keep_last() {
        let group = series(&[
            "2026-01-05T00:00:00Z",
            "2026-01-04T00:00:00Z",
            "2026-01-03T00:00:00Z",
        ]);
        let policy = RetentionPolicy {
            keep_last: Some(2),
            ..Default::default()
        };
        assert_eq!(kept(&decide(&group, &policy)), [0, 1]);
    }

    #[test]
    fn keep_daily_keeps_newest_of_each_day_even_with_two_in_one_bucket() {
        let group = series(&[
            "2026-01-05T23:00:00Z",
            "2026-01-05T01:00:00Z", // same day as the newer one: not kept by daily
            "2026-01-04T12:00:00Z",
            "2026-01-02T12:00:00Z", // a gap day is not counted
            "2026-01-01T12:00:00Z",
        ]);
        let policy = RetentionPolicy {
            keep_daily: Some(3),
            ..Default::default()
        };
        let decisions = decide(&group, &policy);
        assert_eq!(kept(&decisions), [0, 2, 3]);
        assert_eq!(decisions[0].reasons, ["daily"]);
    }

    #[test]
    fn hourly_weekly_monthly_yearly_buckets() {
        let group = series(&[
            "2026-03-02T10:30:00Z", // Monday
            "2026-03-02T10:05:00Z",
            "2026-03-01T09:00:00Z", // Sunday: previous ISO week
            "2026-02-28T09:00:00Z",
            "2025-12-31T09:00:00Z",
            "2024-06-01T00:00:00Z",
        ]);
        let hourly = RetentionPolicy {
            keep_hourly: Some(2),
            ..Default::default()
        };
        assert_eq!(kept(&decide(&group, &hourly)), [0, 2]);
        let weekly = RetentionPolicy {
            keep_weekly: Some(3),
            ..Default::default()
        };
        assert_eq!(kept(&decide(&group, &weekly)), [0, 2, 4]);
        let monthly = RetentionPolicy {
            keep_monthly: Some(3),
            ..Default::default()
        };
        assert_eq!(kept(&decide(&group, &monthly)), [0, 3, 4]);
        let yearly = RetentionPolicy {
            keep_yearly: Some(5),
            ..Default::default()
        };
        assert_eq!(kept(&decide(&group, &yearly)), [0, 4, 5]);
    }

    #[test]
    fn rules_combine_and_report_reasons() {
        let group = series(&[
            "2026-01-05T00:00:00Z",
            "2026-01-04T00:00:00Z",
            "2025-06-01T00:00:00Z",
        ]);
        let policy = RetentionPolicy {
            keep_last: Some(1),
            keep_monthly: Some(2),
            ..Default::default()
        };
        let decisions = decide(&group, &policy);
        assert_eq!(kept(&decisions), [0, 2]);
        assert_eq!(decisions[0].reasons, ["last", "monthly"]);
        assert_eq!(decisions[2].reasons, ["monthly"]);
    }

    #[test]
    fn keep_within_is_relative_to_the_newest_snapshot() {
        let group = series(&[
            "2026-01-31T00:00:00Z",
            "2026-01-02T00:00:00Z",
            "2025-12-31T00:00:00Z",
        ]);
        let policy = RetentionPolicy {
            keep_within: Some(parse_duration("30d").unwrap()),
            ..Default::default()
        };
        assert_eq!(kept(&decide(&group, &policy)), [0, 1]);
    }

    #[test]
    fn keep_tag_and_empty_policy() {
        let group = vec![
            entry("2026-01-05T00:00:00Z", &[], 1),
            entry("2026-01-04T00:00:00Z", &["release"], 2),
        ];
        let policy = RetentionPolicy {
            keep_tags: vec!["release".into()],
            ..Default::default()
        };
        let decisions = decide(&group, &policy);
        assert_eq!(kept(&decisions), [1]);
        assert_eq!(decisions[1].reasons, ["tag release"]);
        assert!(RetentionPolicy::default().is_empty());
        assert!(kept(&decide(&group, &RetentionPolicy::default())).is_empty());
        assert!(decide(&[], &policy).is_empty());
    }

    #[test]
    fn grouping_and_filters() {
        let mut other_source = entry("2026-01-03T00:00:00Z", &[], 3);
        other_source.snapshot.source = "/other".into();
        let mut full = entry("2026-01-01T00:00:00Z", &[], 4);
        full.snapshot.kind = SnapshotKind::Full;
        let all = vec![
            entry("2026-01-05T00:00:00Z", &[], 1),
            entry("2026-01-04T00:00:00Z", &[], 2),
            other_source,
            full,
        ];
        let policy = RetentionPolicy {
            keep_last: Some(1),
            ..Default::default()
        };
        let groups = decide_unfiltered(&all, GroupBy::default(), &policy);
        assert_eq!(groups.len(), 2);
        let kept_total: usize = groups
            .iter()
            .map(|group| group.snapshots.iter().filter(|d| d.keep).count())
            .sum();
        assert_eq!(kept_total, 2);
        let by_host = decide_unfiltered(&all, GroupBy::parse("host").unwrap(), &policy);
        assert_eq!(by_host.len(), 1);
        let only_full = SnapshotFilter {
            kind: Some(SnapshotKind::Full),
            ..Default::default()
        };
        let groups = decide_all(&all, &only_full, GroupBy::default(), &policy);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].snapshots.len(), 1);
        assert!(GroupBy::parse("color").is_err());
    }

    #[test]
    fn default_grouping_is_by_database_identity_and_falls_back_to_host_and_source() {
        let of_database = |time: &str, seed: u8, source: &str, id: Option<&str>| {
            let mut snapshot = entry(time, &[], seed);
            snapshot.snapshot.source = source.into();
            snapshot.snapshot.database = id.map(|id| crate::lsm::manifest::DatabaseState {
                id: Some(id.into()),
                ..Default::default()
            });
            snapshot
        };
        let all = vec![
            of_database(
                "2026-12-01T02:00:00Z",
                1,
                "/data/ckpt/2026-12-01",
                Some("A"),
            ),
            of_database(
                "2026-12-02T02:00:00Z",
                2,
                "/data/ckpt/2026-12-02",
                Some("A"),
            ),
            of_database(
                "2026-12-03T02:00:00Z",
                3,
                "/data/ckpt/2026-12-03",
                Some("A"),
            ),
            of_database("2026-12-03T02:00:00Z", 4, "/data/other", Some("B")),
            of_database("2026-12-03T02:00:00Z", 5, "/plain/1", None),
            of_database("2026-12-03T03:00:00Z", 6, "/plain/2", None),
        ];
        let policy = RetentionPolicy {
            keep_daily: Some(2),
            ..Default::default()
        };
        let groups = decide_unfiltered(&all, GroupBy::default(), &policy);
        let labels: Vec<&str> = groups.iter().map(|group| group.group.as_str()).collect();
        assert_eq!(
            labels,
            [
                "database A, host h",
                "database B, host h",
                "host h, source /plain/1",
                "host h, source /plain/2"
            ]
        );
        assert_eq!(groups[0].snapshots.len(), 3);
        assert_eq!(kept(&groups[0].snapshots), [0, 1], "2 days of database A");
        assert_eq!(GroupBy::parse("database,host").unwrap(), GroupBy::default());
        let by_database = GroupBy::parse("database").unwrap();
        assert_eq!(by_database.key(&all[0]), "database A");
        assert_eq!(by_database.key(&all[4]), "host h, source /plain/1");
        let old_default = GroupBy::parse("host,source").unwrap();
        assert_eq!(decide_unfiltered(&all, old_default, &policy).len(), 6);
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(
            parse_duration("1y2m").unwrap(),
            Duration::from_secs((365 + 60) * 86_400)
        );
        assert_eq!(
            parse_duration("12h").unwrap(),
            Duration::from_secs(12 * 3600)
        );
        for bad in ["", "30", "d", "3x", "0d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
