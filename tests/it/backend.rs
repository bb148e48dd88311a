//! Storage backends through the public conformance suite
//! (`lsmvault::backend::conformance`, the `conformance` feature): what only
//! an integration test can do (race separate processes) and proof that the
//! suite is usable, and has teeth, from outside the library.

use lsmvault::backend::conformance::{self, CASES};
use std::sync::Arc;

use lsmvault::backend::{
    Backend, CachingBackend, CountingBackend, LocalBackend, MemoryBackend, MetadataCache,
    ObjectInfo, ObjectKind, Result, WriteOutcome,
};

/// Several processes race `write_if_absent` of different bytes at one name in
/// one local repository: exactly one wins and the object is whole and its.
/// The children are this test, run again (hence the exact name).
#[test]
fn local_write_if_absent_race_between_processes() {
    let directory = tempfile::tempdir().unwrap();
    let location = directory.path().join("repo");
    conformance::write_if_absent_process_race(
        "backend::local_write_if_absent_race_between_processes",
        location.to_str().expect("temporary paths are UTF-8"),
        |location| LocalBackend::new(location),
    );
}

/// The same race through the wrappers of the metadata cache and request
/// counting, every racer sharing one cache directory.
#[test]
fn cached_write_if_absent_race_between_processes() {
    let directory = tempfile::tempdir().unwrap();
    let location = directory.path().join("repo");
    conformance::write_if_absent_process_race(
        "backend::cached_write_if_absent_race_between_processes",
        location.to_str().expect("temporary paths are UTF-8"),
        |location| {
            let cache = MetadataCache::open(format!("{location}.cache"))
                .expect("a cache directory beside the repository");
            let counted = CountingBackend::new(Arc::new(LocalBackend::new(location)));
            CachingBackend::new(Arc::new(counted), cache)
        },
    );
}

/// A backend that breaks the no-overwrite promise: it must fail the suite.
struct Overwriting(MemoryBackend);

impl Backend for Overwriting {
    fn location(&self) -> String {
        "overwriting:".to_string()
    }
    fn read(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>> {
        self.0.read(kind, name)
    }
    fn read_range(
        &self,
        kind: ObjectKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>> {
        self.0.read_range(kind, name, offset, length)
    }
    fn write_if_absent(&self, kind: ObjectKind, name: &str, bytes: &[u8]) -> Result<WriteOutcome> {
        self.0.delete(kind, name)?;
        self.0.write_if_absent(kind, name, bytes)
    }
    fn replace_config(&self, bytes: &[u8]) -> Result<()> {
        self.0.replace_config(bytes)
    }
    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>> {
        self.0.list(kind)
    }
    fn delete(&self, kind: ObjectKind, name: &str) -> Result<()> {
        self.0.delete(kind, name)
    }
    fn exists(&self) -> Result<bool> {
        self.0.exists()
    }
    fn create(&self) -> Result<()> {
        self.0.create()
    }
}

#[test]
fn the_suite_fails_a_backend_that_overwrites() {
    let case = CASES
        .iter()
        .find(|case| case.name == "write_if_absent_never_overwrites")
        .expect("the case exists");
    let failure = std::panic::catch_unwind(|| {
        conformance::run_case(case, &Overwriting(MemoryBackend::new()));
    })
    .expect_err("an overwriting backend passed");
    let message = failure
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        message.contains("conformance case `write_if_absent_never_overwrites` failed"),
        "{message}"
    );
}
