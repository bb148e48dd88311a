//! Verify: find every problem in a repository and say what it affects.
//!
//! Structure checks (always): every key file and every index file parses;
//! every indexed pack exists and its header lists each indexed blob at the
//! indexed place (a pack whose header lists none of them is another pack
//! under this name: replaced or swapped); every snapshot parses and every
//! tree and chunk it references is indexed, and every file entry's size is
//! the sum of its chunks' lengths; every WAL record parses.
//! Data checks (`--read-data`, or one subset of packs with
//! `--read-data-subset N/M`): each pack is read whole, its name re-hashed,
//! and every blob re-hashed against its id; each file whose chunks lie in
//! the packs read has its whole-file digest checked.
//!
//! Verify never stops at the first problem: it collects every finding, names
//! the damaged object, and lists the snapshots and files that depend on it.
//! Packs and blobs that no snapshot needs (left by an interrupted backup) are
//! reported separately; they are not damage.
//!
//! # Phases, and where they are
//! 1. Key files (each must parse), and index files, read independently of
//!    the repository's index so a bad one is a finding (`structure.rs`).
//! 2. One parallel pass over the packs: each header against the index, and for
//!    the packs `--read-data` selects, every byte (`structure.rs` drives the
//!    pass, `pack_check.rs` checks one pack). In a repository with parity,
//!    then the parity objects: they parse (with `--read-data`: hash to their
//!    names and match their packs), and each damaged pack learns whether its
//!    group can rebuild it (`parity_check.rs`).
//! 3. Snapshots, their trees and the archived WAL segments: every reference
//!    resolves, and every damaged object found so far learns who needs it
//!    (`references.rs`). This runs after the pack pass so that references to
//!    blobs of damaged packs are attributed to those packs' findings.
//! 4. The report: findings sorted by object, affected paths sorted and unique.

mod pack_check;
mod parity_check;
mod references;
mod structure;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::error::Result;
use crate::format::pack::PackEntry;
use crate::id::Id;
use crate::progress::Progress;
use crate::repo::Repository;

use references::ReferenceCheck;

/// Which packs `verify` reads in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadData {
    /// Headers only.
    #[default]
    None,
    /// Every pack.
    All,
    /// Subset `n` (1-based) of `m`: packs whose name's first 4 bytes, as a
    /// number, equal `n - 1` modulo `m`. Running 1/m .. m/m covers everything.
    Subset {
        /// Which part, from 1 to `m`.
        n: u32,
        /// Into how many parts the packs are split.
        m: u32,
    },
}

impl ReadData {
    fn includes(&self, pack: &Id) -> bool {
        match *self {
            ReadData::None => false,
            ReadData::All => true,
            ReadData::Subset { n, m } => {
                let number = u32::from_be_bytes([pack.0[0], pack.0[1], pack.0[2], pack.0[3]]);
                number % m == n - 1
            }
        }
    }
}

/// Options for [`Repository::verify`].
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Which pack contents to read and re-hash (structure is always checked).
    pub read_data: ReadData,
}

/// One problem and what depends on the damaged object.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Finding {
    /// The damaged object, e.g. `pack 1a2b…` or `blob 3c4d… in pack 1a2b…`.
    pub object: String,
    /// What is wrong with it.
    pub problem: String,
    /// `snapshot <id>: <path>` of each affected file or tree.
    pub affected: Vec<String>,
    /// In a repository with parity, for a damaged pack or parity object:
    /// whether `lsmvault repair packs` can rebuild it, and if not why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parity: Option<String>,
}

/// Everything `verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Snapshot files checked.
    pub snapshots: usize,
    /// Distinct trees read.
    pub trees: usize,
    /// Archived WAL segment versions checked.
    pub wal_segments: usize,
    /// Packs listed in the repository.
    pub packs: usize,
    /// Packs whose whole content was read.
    pub packs_read: usize,
    /// Bytes of packs read.
    pub bytes_read: u64,
    /// Blobs listed by the index.
    pub blobs: usize,
    /// Every problem found, each with the snapshots and files it affects.
    pub findings: Vec<Finding>,
    /// Packs no index file lists (an interrupted backup's leftovers).
    pub unindexed_packs: Vec<String>,
    /// Indexed blobs no snapshot references.
    pub unreferenced_blobs: usize,
}

impl VerifyReport {
    /// Whether verify found nothing wrong.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Findings keyed by the damaged object, so each object is reported once.
#[derive(Default)]
struct Findings {
    by_object: BTreeMap<String, Finding>,
    /// Damaged blob id -> the object key its finding is filed under.
    damaged_blobs: HashMap<Id, String>,
    /// Packs found lost or damaged -> the object keys of their findings.
    broken_packs: BTreeMap<Id, Vec<String>>,
}

impl Findings {
    fn add(&mut self, object: String, problem: String) {
        self.by_object.entry(object.clone()).or_insert(Finding {
            object,
            problem,
            affected: Vec::new(),
            parity: None,
        });
    }

    /// A finding about (part of) `pack`: the pack is broken.
    fn add_in_pack(&mut self, pack: Id, object: String, problem: String) {
        self.broken_packs
            .entry(pack)
            .or_default()
            .push(object.clone());
        self.add(object, problem);
    }

    fn add_blob(&mut self, blob: Id, object: String, problem: String) {
        self.damaged_blobs.insert(blob, object.clone());
        self.add(object, problem);
    }

    /// A whole pack is lost or unreadable: every blob the index places in it
    /// is damaged, filed under the pack's finding.
    fn add_pack(&mut self, pack_name: &str, expected: &[PackEntry], problem: String) {
        let object = format!("pack {pack_name}");
        for entry in expected {
            self.damaged_blobs.insert(entry.id, object.clone());
        }
        match Id::from_hex(pack_name) {
            Ok(pack) => self.add_in_pack(pack, object, problem),
            Err(_) => self.add(object, problem),
        }
    }

    /// Records that `who` needs `blob` (a `kind`: "tree" or "blob"): a finding
    /// when no index lists it, and `who` among the affected of any finding on it.
    fn reference(&mut self, blob: Id, indexed: bool, kind: &str, who: impl FnOnce() -> String) {
        if !indexed && !self.damaged_blobs.contains_key(&blob) {
            self.add_blob(
                blob,
                format!("{kind} {blob}"),
                "not in any index (its pack is missing or unindexed)".into(),
            );
        }
        self.affect(&blob, who);
    }

    fn affect(&mut self, blob: &Id, who: impl FnOnce() -> String) {
        if let Some(object) = self.damaged_blobs.get(blob) {
            if let Some(finding) = self.by_object.get_mut(object) {
                finding.affected.push(who());
            }
        }
    }

    /// Takes in the findings another pass collected.
    fn merge(&mut self, other: Findings) {
        self.by_object.extend(other.by_object);
        self.damaged_blobs.extend(other.damaged_blobs);
        for (pack, objects) in other.broken_packs {
            self.broken_packs.entry(pack).or_default().extend(objects);
        }
    }

    /// The findings in object order, each with its affected list sorted and
    /// without repeats.
    fn into_sorted(self) -> Vec<Finding> {
        self.by_object
            .into_values()
            .map(|mut finding| {
                finding.affected.sort();
                finding.affected.dedup();
                finding
            })
            .collect()
    }
}

impl Repository {
    /// Checks the repository; returns every finding (an error only when the
    /// repository cannot be listed at all).
    pub fn verify(&self, options: &VerifyOptions, progress: &dyn Progress) -> Result<VerifyReport> {
        let _lock = self.lock_for_reading("verify")?;
        let mut findings = Findings::default();
        self.verify_key_files(&mut findings)?;
        let indexed = self.verify_index_files(&mut findings)?;
        let packs = self.verify_packs(
            &indexed.expected_by_pack,
            options.read_data,
            &mut findings,
            progress,
        )?;
        self.verify_parity(
            &indexed.expected_by_pack.keys().copied().collect(),
            &packs.listed_sizes,
            options.read_data,
            &mut findings,
        )?;
        let mut references = ReferenceCheck::new(self, &indexed.locations, options.read_data);
        let snapshots = references.check_snapshots(&mut findings)?;
        let wal_segments = references.check_wal_archive(&mut findings);
        Ok(VerifyReport {
            snapshots,
            trees: references.trees_read(),
            wal_segments,
            packs: packs.listed,
            packs_read: packs.read,
            bytes_read: packs.bytes_read,
            blobs: indexed.locations.len(),
            findings: findings.into_sorted(),
            unindexed_packs: packs.unindexed,
            unreferenced_blobs: references.unreferenced_blobs(),
        })
    }
}
