//! [`CountingBackend`]: a wrapper that counts the requests reaching the
//! backend below it, by method and object kind, and the bytes moved each way.
//!
//! Owns nothing but its counters (atomics, so every thread of a command adds
//! to them without a lock). It changes no behaviour: every call is passed to
//! the inner backend unchanged and counted whether it succeeds or fails (a
//! failed request is still a request to an object store). Placed under the
//! metadata cache it counts what the cache did not answer: the figures the
//! object-storage benchmarks and the cache tests assert.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;

use super::{Backend, ObjectInfo, ObjectKind, Result, WriteOutcome};

/// The calls of [`Backend`] that make requests, in counter order.
const METHODS: [&str; 8] = [
    "read",
    "read_range",
    "write_if_absent",
    "replace_config",
    "list",
    "delete",
    "exists",
    "create",
];

const READ: usize = 0;
const READ_RANGE: usize = 1;
const WRITE: usize = 2;
const REPLACE_CONFIG: usize = 3;
const LIST: usize = 4;
const DELETE: usize = 5;
const EXISTS: usize = 6;
const CREATE: usize = 7;

/// Counters for one method, one per [`ObjectKind`] (in [`ObjectKind::ALL`]
/// order).
type KindCounters = [AtomicU64; ObjectKind::ALL.len()];

/// A backend that counts the requests made to `inner`.
pub struct CountingBackend {
    inner: Arc<dyn Backend>,
    requests: [KindCounters; METHODS.len()],
    bytes_down: AtomicU64,
    bytes_up: AtomicU64,
}

/// What a [`CountingBackend`] counted so far (see [`CountingBackend::counts`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RequestCounts {
    /// Every request, of any method and kind.
    pub requests: u64,
    /// Bytes returned by reads (whole and ranged).
    pub bytes_down: u64,
    /// Bytes sent by writes (`write_if_absent`, `replace_config`).
    pub bytes_up: u64,
    /// Requests per method (`read`, `read_range`, `write_if_absent`,
    /// `replace_config`, `list`, `delete`, `exists`, `create`); methods never
    /// called are left out.
    pub by_method: BTreeMap<String, u64>,
    /// Requests per object kind (its directory name, `config` for the
    /// config) and method; kinds and methods never used are left out.
    /// `exists` and `create` concern the whole repository and are counted
    /// under `config`.
    pub by_kind: BTreeMap<String, BTreeMap<String, u64>>,
}

impl RequestCounts {
    /// Requests of `method` on objects of `kind` (0 when none).
    pub fn of(&self, kind: ObjectKind, method: &str) -> u64 {
        self.by_kind
            .get(kind_name(kind))
            .and_then(|methods| methods.get(method))
            .copied()
            .unwrap_or(0)
    }
}

/// The name a kind is counted under.
fn kind_name(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Config => "config",
        other => other.directory(),
    }
}

fn kind_position(kind: ObjectKind) -> usize {
    ObjectKind::ALL
        .iter()
        .position(|candidate| *candidate == kind)
        .unwrap_or(0)
}

impl CountingBackend {
    /// Counts the requests made to `inner`, starting from zero.
    pub fn new(inner: Arc<dyn Backend>) -> CountingBackend {
        CountingBackend {
            inner,
            requests: Default::default(),
            bytes_down: AtomicU64::new(0),
            bytes_up: AtomicU64::new(0),
        }
    }

    fn count(&self, method: usize, kind: ObjectKind) {
        self.requests[method][kind_position(kind)].fetch_add(1, Ordering::Relaxed);
    }

    fn down(&self, bytes: usize) {
        self.bytes_down.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn up(&self, bytes: usize) {
        self.bytes_up.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// The counts so far (each counter read once; calls running meanwhile
    /// may or may not be in them).
    pub fn counts(&self) -> RequestCounts {
        let mut counts = RequestCounts {
            bytes_down: self.bytes_down.load(Ordering::Relaxed),
            bytes_up: self.bytes_up.load(Ordering::Relaxed),
            ..RequestCounts::default()
        };
        for (method, per_kind) in METHODS.iter().zip(&self.requests) {
            for (kind, counter) in ObjectKind::ALL.iter().zip(per_kind) {
                let value = counter.load(Ordering::Relaxed);
                if value == 0 {
                    continue;
                }
                counts.requests += value;
                *counts.by_method.entry(method.to_string()).or_default() += value;
                *counts
                    .by_kind
                    .entry(kind_name(*kind).to_string())
                    .or_default()
                    .entry(method.to_string())
                    .or_default() += value;
            }
        }
        counts
    }
}

impl Backend for CountingBackend {
    delegate_to_inner!(location, is_remote);

    fn read(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>> {
        self.count(READ, kind);
        let bytes = self.inner.read(kind, name)?;
        self.down(bytes.len());
        Ok(bytes)
    }

    fn read_into(&self, kind: ObjectKind, name: &str, buffer: &mut Vec<u8>) -> Result<()> {
        self.count(READ, kind);
        self.inner.read_into(kind, name, buffer)?;
        self.down(buffer.len());
        Ok(())
    }

    fn read_range(
        &self,
        kind: ObjectKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>> {
        self.count(READ_RANGE, kind);
        let bytes = self.inner.read_range(kind, name, offset, length)?;
        self.down(bytes.len());
        Ok(bytes)
    }

    fn write_if_absent(&self, kind: ObjectKind, name: &str, bytes: &[u8]) -> Result<WriteOutcome> {
        self.count(WRITE, kind);
        self.up(bytes.len());
        self.inner.write_if_absent(kind, name, bytes)
    }

    /// Counted as a `write_if_absent` (one object written, however many
    /// requests the backend below makes for it).
    fn write_content_addressed(
        &self,
        kind: ObjectKind,
        name: &str,
        bytes: bytes::Bytes,
    ) -> Result<WriteOutcome> {
        self.count(WRITE, kind);
        self.up(bytes.len());
        self.inner.write_content_addressed(kind, name, bytes)
    }

    /// Counted like [`Backend::write_content_addressed`].
    fn write_spilled(
        &self,
        kind: ObjectKind,
        name: &str,
        spilled: &super::SpillFile,
    ) -> Result<WriteOutcome> {
        self.count(WRITE, kind);
        self.up(spilled.len() as usize);
        self.inner.write_spilled(kind, name, spilled)
    }

    fn replace_config(&self, bytes: &[u8]) -> Result<()> {
        self.count(REPLACE_CONFIG, ObjectKind::Config);
        self.up(bytes.len());
        self.inner.replace_config(bytes)
    }

    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>> {
        self.count(LIST, kind);
        self.inner.list(kind)
    }

    fn delete(&self, kind: ObjectKind, name: &str) -> Result<()> {
        self.count(DELETE, kind);
        self.inner.delete(kind, name)
    }

    fn exists(&self) -> Result<bool> {
        self.count(EXISTS, ObjectKind::Config);
        self.inner.exists()
    }

    fn create(&self) -> Result<()> {
        self.count(CREATE, ObjectKind::Config);
        self.inner.create()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{LocalBackend, MemoryBackend};

    #[test]
    fn counting_backend_meets_the_contract() {
        let directory = tempfile::tempdir().unwrap();
        let mut cases = 0;
        crate::backend::conformance::run_all(|| {
            cases += 1;
            CountingBackend::new(Arc::new(LocalBackend::new(
                directory.path().join(format!("case-{cases}")),
            )))
        });
    }

    #[test]
    fn counts_requests_by_method_and_kind_and_bytes() {
        let backend = CountingBackend::new(Arc::new(MemoryBackend::new()));
        backend
            .write_if_absent(ObjectKind::Snapshot, "a", b"12345")
            .unwrap();
        backend.read(ObjectKind::Snapshot, "a").unwrap();
        backend.read_range(ObjectKind::Snapshot, "a", 1, 2).unwrap();
        backend.read(ObjectKind::Index, "missing").unwrap_err();
        backend.list(ObjectKind::Snapshot).unwrap();
        backend.exists().unwrap();
        let counts = backend.counts();
        assert_eq!(counts.requests, 6);
        assert_eq!(counts.bytes_up, 5);
        assert_eq!(counts.bytes_down, 7);
        assert_eq!(counts.of(ObjectKind::Snapshot, "read"), 1);
        assert_eq!(counts.of(ObjectKind::Snapshot, "read_range"), 1);
        assert_eq!(counts.of(ObjectKind::Index, "read"), 1);
        assert_eq!(counts.of(ObjectKind::Config, "exists"), 1);
        assert_eq!(counts.of(ObjectKind::Pack, "read"), 0);
        assert_eq!(counts.by_method.get("list"), Some(&1));
    }
}
