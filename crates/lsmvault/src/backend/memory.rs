//! An in-memory backend for tests and for embedding callers that want a
//! throw-away repository.
//!
//! Objects live in one map behind a mutex; every operation is a single lookup,
//! insert or remove under that lock, which makes each one atomic (a reader sees
//! an object whole or not at all) and `write_if_absent` race-free between
//! threads. Per process only: it cannot take part in a multi-process race.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use super::{Backend, Error, ObjectInfo, ObjectKind, Result, WriteOutcome};

/// Each object's bytes and the time it was written (listed as its
/// `modified`: this process's clock is the storage's clock here).
type Objects = HashMap<(String, String), (Arc<Vec<u8>>, SystemTime)>;

/// A repository held in process memory.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    objects: Mutex<Objects>,
}

impl MemoryBackend {
    /// An empty store: no `config` yet, so [`Backend::exists`] is false
    /// until a repository is initialized in it.
    pub fn new() -> Self {
        Self::default()
    }

    fn objects(&self) -> MutexGuard<'_, Objects> {
        // A panic while holding the lock cannot leave the map half-updated (every
        // operation is a single insert/remove), so poisoning is safe to ignore.
        self.objects
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn key(kind: ObjectKind, name: &str) -> (String, String) {
        (kind.directory().to_string(), kind.key(name))
    }

    fn get(&self, kind: ObjectKind, name: &str) -> Result<Arc<Vec<u8>>> {
        self.objects()
            .get(&Self::key(kind, name))
            .map(|(bytes, _)| Arc::clone(bytes))
            .ok_or_else(|| Error::NotFound {
                kind,
                name: name.to_string(),
                context: format!("reading {}", kind.describe(name)),
                // The message the memory backend always gave ("entity not found").
                source: Box::new(std::io::Error::from(ErrorKind::NotFound)),
            })
    }
}

impl Backend for MemoryBackend {
    fn location(&self) -> String {
        "memory:".to_string()
    }

    fn read(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>> {
        Ok(self.get(kind, name)?.as_ref().clone())
    }

    fn read_range(
        &self,
        kind: ObjectKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>> {
        let object = self.get(kind, name)?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(usize::try_from(length).unwrap_or(usize::MAX));
        // `get` is `None` for any range reaching past the end, including an
        // empty one that starts past it.
        object
            .get(start..end)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| Error::ShortObject {
                kind,
                name: name.to_string(),
                offset,
                length,
            })
    }

    fn write_if_absent(&self, kind: ObjectKind, name: &str, bytes: &[u8]) -> Result<WriteOutcome> {
        let mut objects = self.objects();
        let key = Self::key(kind, name);
        if objects.contains_key(&key) {
            return Ok(WriteOutcome::AlreadyExisted);
        }
        objects.insert(key, (Arc::new(bytes.to_vec()), SystemTime::now()));
        Ok(WriteOutcome::Created)
    }

    fn replace_config(&self, bytes: &[u8]) -> Result<()> {
        self.objects().insert(
            Self::key(ObjectKind::Config, "config"),
            (Arc::new(bytes.to_vec()), SystemTime::now()),
        );
        Ok(())
    }

    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>> {
        let directory = kind.directory();
        Ok(self
            .objects()
            .iter()
            .filter(|((object_directory, _), _)| object_directory == directory)
            .map(|((_, key), (bytes, written))| ObjectInfo {
                name: key.rsplit('/').next().unwrap_or(key).to_string(),
                size: bytes.len() as u64,
                modified: Some(*written),
            })
            .collect())
    }

    fn delete(&self, kind: ObjectKind, name: &str) -> Result<()> {
        self.objects().remove(&Self::key(kind, name));
        Ok(())
    }

    fn exists(&self) -> Result<bool> {
        Ok(self
            .objects()
            .contains_key(&Self::key(ObjectKind::Config, "config")))
    }

    fn create(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_backend_meets_the_contract() {
        crate::backend::conformance::run_all(super::MemoryBackend::new);
    }
}
