//! Verify: find every problem in a repository and say what it affects.
//!
//! Structure checks (always): every index file parses; every indexed pack
//! exists and its header lists each indexed blob at the indexed place; every
//! snapshot parses and every tree and chunk it references is indexed.
//! Data checks (`--read-data`, or one subset of packs with
//! `--read-data-subset N/M`): each pack is read whole, its name re-hashed,
//! and every blob re-hashed against its id.
//!
//! Verify never stops at the first problem: it collects every finding, names
//! the damaged object, and lists the snapshots and files that depend on it.
//! Packs and blobs that no snapshot needs (left by an interrupted backup) are
//! reported separately; they are not damage.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::sync::Mutex;

use rayon::prelude::*;
use serde::Serialize;

use crate::backend::ObjectKind;
use crate::error::{Error, Result};
use crate::format::index::BlobLocation;
use crate::format::pack::{self, PackEntry, TRAILER_LENGTH};
use crate::format::tree::{Entry, EntryKind, Tree};
use crate::id::Id;
use crate::progress::Progress;
use crate::repo::lock::LockKind;
use crate::repo::tree_walker::TreeWalker;
use crate::repo::{check_name, Repository};

thread_local! {
    /// The buffer whole packs are read into by this thread.
    static PACK_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

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
    Subset { n: u32, m: u32 },
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
    pub read_data: ReadData,
}

/// One problem and what depends on the damaged object.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Finding {
    /// The damaged object, e.g. `pack 1a2b…` or `blob 3c4d… in pack 1a2b…`.
    pub object: String,
    pub problem: String,
    /// `snapshot <id>: <path>` of each affected file or tree.
    pub affected: Vec<String>,
}

/// Everything `verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub snapshots: usize,
    pub trees: usize,
    /// Archived WAL segment versions checked.
    pub wal_segments: usize,
    pub packs: usize,
    pub packs_read: usize,
    pub bytes_read: u64,
    pub blobs: usize,
    pub findings: Vec<Finding>,
    /// Packs no index file lists (an interrupted backup's leftovers).
    pub unindexed_packs: Vec<String>,
    /// Indexed blobs no snapshot references.
    pub unreferenced_blobs: usize,
}

impl VerifyReport {
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
}

impl Findings {
    fn add(&mut self, object: String, problem: String) {
        self.by_object.entry(object.clone()).or_insert(Finding {
            object,
            problem,
            affected: Vec::new(),
        });
    }

    fn add_blob(&mut self, blob: Id, object: String, problem: String) {
        self.damaged_blobs.insert(blob, object.clone());
        self.add(object, problem);
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
}

impl Repository {
    /// Checks the repository; returns every finding (an error only when the
    /// repository cannot be listed at all).
    pub fn verify(&self, options: &VerifyOptions, progress: &dyn Progress) -> Result<VerifyReport> {
        let _lock = self.lock(LockKind::Shared, "verify")?;
        let mut report = VerifyReport::default();
        let mut findings = Findings::default();

        // Index files, read independently of `self.index()` so a bad one is a finding.
        let index_files = self.backend().list(ObjectKind::Index)?;
        let mut locations: HashMap<Id, BlobLocation> = HashMap::new();
        let mut expected_by_pack: HashMap<Id, Vec<PackEntry>> = HashMap::new();
        let decoded: Vec<(String, Result<Vec<BlobLocation>>)> = index_files
            .par_iter()
            .map(|file| (file.name.clone(), self.read_index_file(&file.name)))
            .collect();
        for (name, result) in decoded {
            match result {
                Ok(entries) => {
                    for location in entries {
                        expected_by_pack
                            .entry(location.pack)
                            .or_default()
                            .push(location.entry);
                        locations.entry(location.entry.id).or_insert(location);
                    }
                }
                Err(error) => findings.add(format!("index file {name}"), error.to_string()),
            }
        }
        report.blobs = locations.len();

        // Packs: header against index; with read-data, every byte.
        let packs = self.backend().list(ObjectKind::Pack)?;
        report.packs = packs.len();
        let listed: HashSet<String> = packs.iter().map(|pack| pack.name.clone()).collect();
        for (pack, entries) in &expected_by_pack {
            if !listed.contains(&pack.to_hex()) {
                let object = format!("pack {pack}");
                for entry in entries {
                    findings.damaged_blobs.insert(entry.id, object.clone());
                }
                findings.add(
                    object,
                    format!("missing, {} indexed blob(s) lost", entries.len()),
                );
            }
        }
        let total_read: u64 = packs
            .iter()
            .filter(|pack| {
                Id::from_hex(&pack.name)
                    .map(|id| options.read_data.includes(&id))
                    .unwrap_or(false)
            })
            .map(|pack| pack.size)
            .sum();
        progress.start("verifying packs", total_read);
        let pack_findings = Mutex::new(Findings::default());
        let unindexed = Mutex::new(Vec::new());
        let read_counts = Mutex::new((0usize, 0u64));
        packs.par_iter().for_each(|listed_pack| {
            let name = &listed_pack.name;
            let Ok(pack_id) = Id::from_hex(name) else {
                pack_findings
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .add(
                        format!("pack {name}"),
                        "name is not a 64-digit hex id".into(),
                    );
                return;
            };
            let expected = expected_by_pack
                .get(&pack_id)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let read_whole = options.read_data.includes(&pack_id);
            let outcome = self.check_pack(name, listed_pack.size, expected, read_whole);
            if read_whole {
                let mut counts = read_counts
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                counts.0 += 1;
                counts.1 += listed_pack.size;
                progress.advance(listed_pack.size);
            }
            let mut found = pack_findings
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match outcome {
                Ok(check) => {
                    if expected.is_empty() {
                        unindexed
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .push(name.clone());
                    }
                    if let Some(problem) = check.name_problem {
                        found.add(format!("pack {name}"), problem);
                    }
                    for (blob, problem) in check.damaged_blobs {
                        found.add_blob(blob, format!("blob {blob} in pack {name}"), problem);
                    }
                }
                Err(error) => {
                    let object = format!("pack {name}");
                    for entry in expected {
                        found.damaged_blobs.insert(entry.id, object.clone());
                    }
                    found.add(object, error.to_string());
                }
            }
        });
        // The pool's threads outlive this call (an embedding program keeps
        // them): give their pack buffers back.
        rayon::broadcast(|_| PACK_BUFFER.with(|cell| cell.take()));
        progress.finish();
        let pack_findings = pack_findings
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        findings.by_object.extend(pack_findings.by_object);
        findings.damaged_blobs.extend(pack_findings.damaged_blobs);
        (report.packs_read, report.bytes_read) = read_counts
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        report.unindexed_packs = unindexed
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        report.unindexed_packs.sort();

        // Snapshots and trees: every reference resolves.
        let snapshot_files = self.backend().list(ObjectKind::Snapshot)?;
        report.snapshots = snapshot_files.len();
        let mut referenced: HashSet<Id> = HashSet::new();
        let mut trees: HashMap<Id, std::result::Result<Rc<Tree>, String>> = HashMap::new();
        for file in &snapshot_files {
            let entry = match self.read_snapshot(&file.name) {
                Ok(entry) => entry,
                Err(error) => {
                    findings.add(format!("snapshot {}", file.name), error.to_string());
                    continue;
                }
            };
            let label = format!("snapshot {}", entry.id.short());
            let findings = RefCell::new(&mut findings);
            let referenced = RefCell::new(&mut referenced);
            let load = |tree_id: &Id, path: &[u8]| -> Result<Option<Rc<Tree>>> {
                let mut findings = findings.borrow_mut();
                referenced.borrow_mut().insert(*tree_id);
                let path = String::from_utf8_lossy(path);
                let where_ = || format!("{label}: {}", if path.is_empty() { "/" } else { &path });
                findings.reference(*tree_id, locations.contains_key(tree_id), "tree", where_);
                let tree = trees
                    .entry(*tree_id)
                    .or_insert_with(|| match locations.get(tree_id) {
                        Some(location) => self
                            .read_blob_at(location)
                            .and_then(|bytes| Tree::decode(tree_id, &bytes))
                            .map(Rc::new)
                            .map_err(|error| error.to_string()),
                        None => Err("unreadable".into()),
                    });
                match tree {
                    Ok(tree) => Ok(Some(Rc::clone(tree))),
                    Err(problem) => {
                        if !findings.damaged_blobs.contains_key(tree_id) {
                            let problem = problem.clone();
                            findings.add_blob(*tree_id, format!("tree {tree_id}"), problem);
                            findings.affect(tree_id, where_);
                        }
                        Ok(None)
                    }
                }
            };
            let visit = |path: &[u8], child: &Entry| -> Result<bool> {
                if let EntryKind::File { chunks, .. } = &child.kind {
                    let child_path = String::from_utf8_lossy(path);
                    for chunk in chunks {
                        referenced.borrow_mut().insert(*chunk);
                        findings.borrow_mut().reference(
                            *chunk,
                            locations.contains_key(chunk),
                            "blob",
                            || format!("{label}: {child_path}"),
                        );
                    }
                }
                Ok(true)
            };
            TreeWalker::new(self).walk_with(&entry.snapshot.tree, load, visit)?;
        }
        // Archived WAL segments: every chunk resolves.
        match self.wal_objects() {
            Ok(objects) => {
                for (_, object) in objects {
                    let crate::format::wal_object::WalObject::Segment(record) = object else {
                        continue;
                    };
                    report.wal_segments += 1;
                    for chunk in record.chunks {
                        referenced.insert(chunk);
                        findings.reference(chunk, locations.contains_key(&chunk), "blob", || {
                            format!(
                                "WAL segment {} of database {}",
                                record.file_name, record.database_id
                            )
                        });
                    }
                }
            }
            Err(error) => findings.add("WAL records".into(), error.to_string()),
        }
        report.trees = trees.len();
        report.unreferenced_blobs = locations
            .keys()
            .filter(|id| !referenced.contains(id))
            .count();
        for finding in findings.by_object.values_mut() {
            finding.affected.sort();
            finding.affected.dedup();
        }
        report.findings = findings.by_object.into_values().collect();
        Ok(report)
    }

    /// Checks one pack: header against the index entries, and with `read_whole`
    /// the pack's name and every blob's content. Whole packs are read into one
    /// buffer per thread: a fresh 16 MiB buffer per pack cost a page fault per
    /// 4 KiB.
    fn check_pack(
        &self,
        name: &str,
        size: u64,
        expected: &[PackEntry],
        read_whole: bool,
    ) -> Result<PackCheck> {
        let mut pack_buffer = PACK_BUFFER.with(|cell| cell.take());
        let checked = self.check_pack_with(name, size, expected, read_whole, &mut pack_buffer);
        PACK_BUFFER.with(|cell| cell.replace(pack_buffer));
        checked
    }

    fn check_pack_with(
        &self,
        name: &str,
        size: u64,
        expected: &[PackEntry],
        read_whole: bool,
        pack_buffer: &mut Vec<u8>,
    ) -> Result<PackCheck> {
        let backend = self.backend();
        let mut check = PackCheck::default();
        let (entries, whole) = if read_whole {
            backend.read_into(ObjectKind::Pack, name, pack_buffer)?;
            let bytes: &[u8] = pack_buffer;
            // A wrong name alone (a renamed or swapped pack) is reported, but the
            // blobs are still checked one by one so damage is pinned to them.
            check.name_problem = check_name(ObjectKind::Pack, name, bytes)
                .err()
                .map(|error| error.to_string());
            (pack::parse_pack(name, bytes, self.keys())?, Some(bytes))
        } else {
            if size < TRAILER_LENGTH as u64 {
                return Err(Error::corrupt(
                    format!("pack {name}"),
                    "shorter than a pack trailer",
                ));
            }
            let trailer = backend.read_range(
                ObjectKind::Pack,
                name,
                size - TRAILER_LENGTH as u64,
                TRAILER_LENGTH as u64,
            )?;
            let header_length = u64::from(pack::parse_trailer(name, &trailer)?);
            let header_start = (size - TRAILER_LENGTH as u64)
                .checked_sub(header_length)
                .ok_or_else(|| {
                    Error::corrupt(format!("pack {name}"), "header length exceeds the pack")
                })?;
            let header = backend.read_range(ObjectKind::Pack, name, header_start, header_length)?;
            (
                pack::parse_header(name, &header, header_start, self.keys())?,
                None,
            )
        };
        let by_id: HashMap<Id, &PackEntry> =
            entries.iter().map(|entry| (entry.id, entry)).collect();
        for wanted in expected {
            match by_id.get(&wanted.id) {
                Some(found) if *found == wanted => {}
                Some(_) => check.damaged_blobs.push((
                    wanted.id,
                    "index and pack header disagree on its place or size".into(),
                )),
                None => check.damaged_blobs.push((
                    wanted.id,
                    "indexed, but the pack header does not list it".into(),
                )),
            }
        }
        if let Some(bytes) = whole {
            for entry in &entries {
                let start = entry.offset as usize;
                let stored = &bytes[start..start + entry.stored_length as usize];
                if let Err(error) =
                    pack::decode_blob(entry, stored, self.keys(), || format!("blob {}", entry.id))
                {
                    check.damaged_blobs.push((entry.id, error.to_string()));
                }
            }
        }
        Ok(check)
    }
}

#[derive(Default)]
struct PackCheck {
    name_problem: Option<String>,
    damaged_blobs: Vec<(Id, String)>,
}
