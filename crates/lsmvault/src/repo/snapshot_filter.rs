//! [`SnapshotFilter`]: which snapshots a command considers — `snapshots`,
//! `forget`, and the `latest` that `ls`, `restore` and `diff` resolve —
//! chosen by tag, host, source path, kind and database identity, with
//! restic's semantics for tags.
//!
//! Invariant: an empty filter passes every snapshot, so a command given no
//! filter flag behaves as it did before filters existed.

use crate::error::{Error, Result};
use crate::format::snapshot::{self, SnapshotEntry, SnapshotKind};
use crate::repo::snapshots::{select_checked, SelectedSnapshot};
use crate::repo::Repository;

/// Which snapshots a command considers; every condition set must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotFilter {
    /// Tag lists, as restic's `--tag a,b --tag c`: a snapshot passes when it
    /// carries every tag of at least one list; an empty list (restic's
    /// `--tag ''`) passes the snapshots without any tag. No list: any
    /// snapshot.
    pub tags: Vec<Vec<String>>,
    /// Only snapshots of this source path (`--path`): compared with the
    /// snapshot file's `source` field (the absolute path backed up), a
    /// trailing `/` ignored.
    pub source: Option<String>,
    /// Only snapshots made on this host: compared exactly with the
    /// snapshot file's `host` field.
    pub host: Option<String>,
    /// Only snapshots of this kind (e.g. "keep 4 full, 30 days of incrementals"
    /// is two runs: `--kind full --keep-last 4`, `--kind incremental --keep-within 30d`).
    pub kind: Option<SnapshotKind>,
    /// Only snapshots of the database with this identity (the snapshot's
    /// `database.id`), compared exactly.
    pub database_id: Option<String>,
}

impl SnapshotFilter {
    /// Whether the snapshot passes every condition set (an empty filter
    /// passes every snapshot).
    pub fn matches(&self, entry: &SnapshotEntry) -> bool {
        let snapshot = &entry.snapshot;
        let tags_match = self.tags.is_empty()
            || self.tags.iter().any(|list| match list.as_slice() {
                // Not "every tag of nothing" (which every snapshot has):
                // `--tag "$UNSET"` must not widen a forget to everything.
                [] => snapshot.tags.is_empty(),
                list => list.iter().all(|tag| snapshot.tags.contains(tag)),
            });
        let identity = snapshot
            .database
            .as_ref()
            .and_then(|state| state.id.as_deref());
        tags_match
            && self
                .source
                .as_deref()
                .is_none_or(|source| trim_slashes(&snapshot.source) == trim_slashes(source))
            && self.host.as_ref().is_none_or(|host| &snapshot.host == host)
            && self.kind.is_none_or(|kind| snapshot.kind == kind)
            && self
                .database_id
                .as_deref()
                .is_none_or(|id| identity == Some(id))
    }

    /// Whether this filter decides what `selector` names: `latest` and
    /// `latest:TAG` under a filter with conditions (an id or prefix names
    /// its snapshot whatever the filter).
    pub fn chooses(&self, selector: &str) -> bool {
        let latest = selector == "latest" || selector.starts_with("latest:");
        latest && !self.is_empty()
    }

    /// Whether no condition is set.
    pub fn is_empty(&self) -> bool {
        *self == SnapshotFilter::default()
    }

    /// The conditions in words, for messages: `host db2, tag a,b or c`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.tags.is_empty() {
            let lists: Vec<String> = self
                .tags
                .iter()
                .map(|list| match list.as_slice() {
                    [] => "(none)".to_string(),
                    list => list.join(","),
                })
                .collect();
            parts.push(format!("tag {}", lists.join(" or ")));
        }
        if let Some(host) = &self.host {
            parts.push(format!("host {host}"));
        }
        if let Some(source) = &self.source {
            parts.push(format!("path {source}"));
        }
        if let Some(kind) = self.kind {
            parts.push(format!("kind {kind}"));
        }
        if let Some(id) = &self.database_id {
            parts.push(format!("database id {id}"));
        }
        parts.join(", ")
    }
}

/// `/data/db/` and `/data/db` name one directory (but `/` stays `/`).
fn trim_slashes(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() && !path.is_empty() {
        "/"
    } else {
        trimmed
    }
}

impl Repository {
    /// Like [`Repository::find_snapshot`], with `latest` and `latest:TAG`
    /// chosen among the snapshots `filter` passes (`ls latest --host db2`:
    /// the newest snapshot of that host). An id or prefix names its snapshot
    /// whatever the filter, as in restic (`diff ID latest --host db2`
    /// compares across hosts). Nothing passing is
    /// [`Error::SnapshotNotFound`] naming the selector and the filter.
    pub fn find_snapshot_filtered(
        &self,
        selector: &str,
        filter: &SnapshotFilter,
    ) -> Result<SnapshotEntry> {
        if !filter.chooses(selector) {
            return self.find_snapshot(selector);
        }
        let (entries, _damaged) = self.snapshots_checked()?;
        let mut passing: Vec<SnapshotEntry> = entries
            .into_iter()
            .filter(|entry| filter.matches(entry))
            .collect();
        snapshot::sort_by_time(&mut passing);
        // `latest` never selects a damaged file (its time is unknown).
        match select_checked(&passing, &[], selector) {
            Ok(SelectedSnapshot::Intact(entry)) => Ok(*entry),
            Ok(SelectedSnapshot::Damaged(_)) | Err(Error::SnapshotNotFound { .. }) => {
                Err(Error::SnapshotNotFound {
                    selector: format!("{selector} with {}", filter.describe()),
                })
            }
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::snapshot::test_snapshot;
    use crate::id::Id;

    fn entry(tags: &[&str], host: &str, source: &str) -> SnapshotEntry {
        let mut snapshot = test_snapshot("2026-01-01T00:00:00Z", tags);
        snapshot.host = host.into();
        snapshot.source = source.into();
        SnapshotEntry {
            id: Id([1; 32]),
            snapshot,
        }
    }

    fn tags(lists: &[&[&str]]) -> SnapshotFilter {
        SnapshotFilter {
            tags: lists
                .iter()
                .map(|list| list.iter().map(|tag| tag.to_string()).collect())
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn tag_lists_are_and_within_and_or_between_as_restic() {
        let both = entry(&["nightly", "db"], "h", "/data");
        let one = entry(&["nightly"], "h", "/data");
        assert!(tags(&[&["nightly", "db"]]).matches(&both));
        assert!(!tags(&[&["nightly", "db"]]).matches(&one));
        assert!(tags(&[&["nightly", "db"], &["nightly"]]).matches(&one));
        assert!(!tags(&[&["weekly"]]).matches(&one));
        // An empty list passes only untagged snapshots, never everything.
        let untagged = entry(&[], "h", "/data");
        assert!(tags(&[&[]]).matches(&untagged));
        assert!(!tags(&[&[]]).matches(&one));
        assert_eq!(tags(&[&[]]).describe(), "tag (none)");
        assert!(SnapshotFilter::default().matches(&one));
        assert!(SnapshotFilter::default().is_empty());
        assert_eq!(tags(&[&["a", "b"], &["c"]]).describe(), "tag a,b or c");
    }

    #[test]
    fn host_path_and_database_id() {
        let mut snapshot = entry(&[], "db2", "/data/ckpt/1");
        let host = SnapshotFilter {
            host: Some("db2".into()),
            ..Default::default()
        };
        assert!(host.matches(&snapshot));
        let path = SnapshotFilter {
            source: Some("/data/ckpt/1/".into()),
            ..Default::default()
        };
        assert!(path.matches(&snapshot));
        assert_eq!(trim_slashes("/"), "/");
        let id = SnapshotFilter {
            database_id: Some("abc".into()),
            ..Default::default()
        };
        assert!(!id.matches(&snapshot), "no identity recorded: no match");
        snapshot.snapshot.database = Some(crate::lsm::manifest::DatabaseState {
            id: Some("abc".into()),
            ..Default::default()
        });
        assert!(id.matches(&snapshot));
        assert_eq!(id.describe(), "database id abc");
    }
}
