//! Verify's structure checks: the key files, the index files, and the one
//! parallel pass over the packs (each header against the index; with
//! `--read-data`, every byte).
//!
//! The pass lists every pack once and reads each at most once; what its
//! workers find is gathered under short locks and merged into the caller's
//! findings when the pass is over.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use rayon::prelude::*;

use super::pack_check::release_pack_buffers;
use super::{Findings, ReadData};
use crate::backend::{ObjectInfo, ObjectKind};
use crate::error::Result;
use crate::format::index::BlobLocation;
use crate::format::pack::PackEntry;
use crate::id::Id;
use crate::progress::Progress;
use crate::repo::Repository;

/// What the index files say.
pub(super) struct IndexedBlobs {
    /// Blob id -> its location (the first index file listing it wins).
    pub(super) locations: HashMap<Id, BlobLocation>,
    /// Pack id -> the entries the index files place in it.
    pub(super) expected_by_pack: HashMap<Id, Vec<PackEntry>>,
}

/// What the pack pass counted.
pub(super) struct PackSummary {
    /// Packs the backend lists.
    pub(super) listed: usize,
    /// Packs read whole, and their bytes.
    pub(super) read: usize,
    pub(super) bytes_read: u64,
    /// Sorted names of packs no index file lists.
    pub(super) unindexed: Vec<String>,
    /// Ids and sizes of the packs the backend lists.
    pub(super) listed_sizes: HashMap<Id, u64>,
}

/// A poisoned lock only means another worker panicked; what it collected is
/// still worth reporting.
fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn into_inner<T>(mutex: Mutex<T>) -> T {
    mutex
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Repository {
    /// Reads every index file (in parallel), independently of `self.index()`
    /// so that a bad one is a finding rather than an error.
    pub(super) fn verify_index_files(&self, findings: &mut Findings) -> Result<IndexedBlobs> {
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
        Ok(IndexedBlobs {
            locations,
            expected_by_pack,
        })
    }

    /// Reports every key file that does not parse (one that parses cannot be
    /// judged without its password). It blocks nothing, but it is damage:
    /// its password no longer opens the repository.
    pub(super) fn verify_key_files(&self, findings: &mut Findings) -> Result<()> {
        for key in self.list_keys()? {
            if let Some(problem) = key.damaged {
                findings.add(format!("key file {}", key.name), problem);
            }
        }
        Ok(())
    }

    /// Checks every listed pack against the index (and reads the packs
    /// `read_data` selects whole), and reports indexed packs that are missing.
    pub(super) fn verify_packs(
        &self,
        expected_by_pack: &HashMap<Id, Vec<PackEntry>>,
        read_data: ReadData,
        findings: &mut Findings,
        progress: &dyn Progress,
    ) -> Result<PackSummary> {
        let packs = self.backend().list(ObjectKind::Pack)?;
        report_missing_packs(&packs, expected_by_pack, findings);
        let total_read: u64 = packs
            .iter()
            .filter(|pack| {
                Id::from_hex(&pack.name)
                    .map(|id| read_data.includes(&id))
                    .unwrap_or(false)
            })
            .map(|pack| pack.size)
            .sum();
        progress.start("verifying packs", total_read);
        let pass = PackPass {
            repository: self,
            expected_by_pack,
            read_data,
            progress,
            findings: Mutex::new(Findings::default()),
            unindexed: Mutex::new(Vec::new()),
            read_counts: Mutex::new((0, 0)),
        };
        packs
            .par_iter()
            .for_each(|listed_pack| pass.check(listed_pack));
        release_pack_buffers();
        progress.finish();

        findings.merge(into_inner(pass.findings));
        let (read, bytes_read) = into_inner(pass.read_counts);
        let mut unindexed = into_inner(pass.unindexed);
        unindexed.sort();
        Ok(PackSummary {
            listed: packs.len(),
            read,
            bytes_read,
            unindexed,
            listed_sizes: packs
                .iter()
                .filter_map(|pack| Some((Id::from_hex(&pack.name).ok()?, pack.size)))
                .collect(),
        })
    }
}

/// Indexed packs the backend does not list: each loses all its indexed blobs.
fn report_missing_packs(
    packs: &[ObjectInfo],
    expected_by_pack: &HashMap<Id, Vec<PackEntry>>,
    findings: &mut Findings,
) {
    let listed: HashSet<String> = packs.iter().map(|pack| pack.name.clone()).collect();
    for (pack, entries) in expected_by_pack {
        if !listed.contains(&pack.to_hex()) {
            findings.add_pack(
                &pack.to_string(),
                entries,
                format!("missing, {} indexed blob(s) lost", entries.len()),
            );
        }
    }
}

/// The state the pack pass's workers share.
struct PackPass<'a> {
    repository: &'a Repository,
    expected_by_pack: &'a HashMap<Id, Vec<PackEntry>>,
    read_data: ReadData,
    progress: &'a dyn Progress,
    findings: Mutex<Findings>,
    /// Names of packs no index file lists.
    unindexed: Mutex<Vec<String>>,
    /// (packs read whole, bytes read).
    read_counts: Mutex<(usize, u64)>,
}

impl PackPass<'_> {
    /// Checks one listed pack and files what it finds.
    fn check(&self, listed_pack: &ObjectInfo) {
        let name = &listed_pack.name;
        let Ok(pack_id) = Id::from_hex(name) else {
            locked(&self.findings).add(
                format!("pack {name}"),
                "name is not a 64-digit hex id".into(),
            );
            return;
        };
        let expected = self
            .expected_by_pack
            .get(&pack_id)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let read_whole = self.read_data.includes(&pack_id);
        let outcome = self
            .repository
            .check_pack(name, listed_pack.size, expected, read_whole);
        if read_whole {
            let mut counts = locked(&self.read_counts);
            counts.0 += 1;
            counts.1 += listed_pack.size;
            self.progress.advance(listed_pack.size);
        }
        let mut found = locked(&self.findings);
        match outcome {
            Ok(check) => {
                if expected.is_empty() {
                    locked(&self.unindexed).push(name.clone());
                }
                if let Some(problem) = check.replaced {
                    // Every indexed blob is lost with the pack: one finding.
                    found.add_pack(name, expected, problem);
                    return;
                }
                if let Some(problem) = check.name_problem {
                    found.add_in_pack(pack_id, format!("pack {name}"), problem);
                }
                for (blob, problem) in check.damaged_blobs {
                    let object = format!("blob {blob} in pack {name}");
                    found.add_blob(blob, object.clone(), problem);
                    found.broken_packs.entry(pack_id).or_default().push(object);
                }
            }
            Err(error) => found.add_pack(name, expected, error.to_string()),
        }
    }
}
