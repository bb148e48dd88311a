//! [`TimeShiftBackend`]: a wrapper for tests that plays a storage whose
//! clock runs on while the client stands still, a virtual machine paused by
//! its hypervisor (`virsh suspend`, a snapshot, a migration blackout): the
//! guest's `CLOCK_BOOTTIME` and wall clock stop, the storage's does not.
//!
//! Owns one offset and the offset each object was written under. Every
//! object written after [`TimeShiftBackend::advance`] is listed with its
//! `modified` time that much later; objects written before keep theirs.
//! So, to every client of the wrapper, the storage's clock jumped forward
//! at that point, and the locks written before it aged at once, while no
//! [`LockClock`](crate::repo::lock::LockClock) of this process moved.
//! Everything else passes through unchanged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Backend, ObjectInfo, ObjectKind, Result, WriteOutcome};

/// A backend whose storage clock can be moved forward (see the module docs).
pub struct TimeShiftBackend {
    inner: Arc<dyn Backend>,
    /// Milliseconds the storage's clock is ahead now.
    ahead: AtomicU64,
    /// The offset each object (by key) was written under, when not zero.
    written_ahead: Mutex<HashMap<String, u64>>,
    /// Whether to answer [`Backend::is_remote`] with true whatever the inner
    /// backend says: an object store played in memory.
    remote: bool,
}

impl TimeShiftBackend {
    /// Wraps `inner`, its clock not shifted yet.
    pub fn new(inner: Arc<dyn Backend>) -> TimeShiftBackend {
        TimeShiftBackend {
            inner,
            ahead: AtomicU64::new(0),
            written_ahead: Mutex::new(HashMap::new()),
            remote: false,
        }
    }

    /// Like [`TimeShiftBackend::new`], and says it is remote (an object
    /// store) whatever `inner` is.
    pub fn remote(inner: Arc<dyn Backend>) -> TimeShiftBackend {
        TimeShiftBackend {
            remote: true,
            ..TimeShiftBackend::new(inner)
        }
    }

    /// Moves the storage's clock forward by `by` for every object written
    /// from now on.
    pub fn advance(&self, by: Duration) {
        let millis = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.ahead.fetch_add(millis, Ordering::SeqCst);
    }

    fn stamp(&self, kind: ObjectKind, name: &str) {
        let ahead = self.ahead.load(Ordering::SeqCst);
        let mut written = self
            .written_ahead
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        written.insert(kind.key(name), ahead);
    }
}

impl Backend for TimeShiftBackend {
    delegate_to_inner!(location, read_range, replace_config, delete, exists, create);

    fn is_remote(&self) -> bool {
        self.remote || self.inner.is_remote()
    }

    fn read(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>> {
        self.inner.read(kind, name)
    }

    fn write_if_absent(&self, kind: ObjectKind, name: &str, bytes: &[u8]) -> Result<WriteOutcome> {
        let outcome = self.inner.write_if_absent(kind, name, bytes)?;
        if outcome == WriteOutcome::Created {
            self.stamp(kind, name);
        }
        Ok(outcome)
    }

    fn write_content_addressed(
        &self,
        kind: ObjectKind,
        name: &str,
        bytes: bytes::Bytes,
    ) -> Result<WriteOutcome> {
        let outcome = self.inner.write_content_addressed(kind, name, bytes)?;
        if outcome == WriteOutcome::Created {
            self.stamp(kind, name);
        }
        Ok(outcome)
    }

    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>> {
        let mut listed = self.inner.list(kind)?;
        let written = self
            .written_ahead
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for object in &mut listed {
            let ahead = written.get(&kind.key(&object.name)).copied().unwrap_or(0);
            object.modified = object
                .modified
                .map(|time| time + Duration::from_millis(ahead));
        }
        Ok(listed)
    }
}
