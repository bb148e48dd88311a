//! The embedded default backend: a repository in a local directory.
//!
//! Publication is `write temp file → fsync → link(temp, final) → unlink temp →
//! fsync directory`. `link` fails when the final name exists, which gives the
//! create-if-absent semantics of [`Backend::write_if_absent`] without a window
//! in which two writers could clobber each other. Temporary files start with a
//! dot and are never listed.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Backend, ObjectInfo, ObjectKind, WriteOutcome};
use crate::error::{Error, IoContext, Result};

/// A repository stored in a directory of the local file system.
#[derive(Debug)]
pub struct LocalBackend {
    root: PathBuf,
    temp_counter: AtomicU64,
}

impl LocalBackend {
    /// A backend rooted at `root` (which need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalBackend {
            root: root.into(),
            temp_counter: AtomicU64::new(0),
        }
    }

    /// Creates the directory skeleton of a new repository.
    pub fn create_layout(&self) -> Result<()> {
        let mut directories = vec![
            self.root.join("index"),
            self.root.join("snapshots"),
            self.root.join("locks"),
            self.root.join("keys"),
            self.root.join("wal"),
        ];
        directories.extend((0..=255u8).map(|fan| self.root.join(format!("data/{fan:02x}"))));
        for directory in &directories {
            fs::create_dir_all(directory)
                .context(|| format!("creating {}", directory.display()))?;
        }
        sync_directory(&self.root)?;
        sync_directory(&self.root.join("data"))
    }

    fn path(&self, kind: ObjectKind, name: &str) -> PathBuf {
        self.root.join(kind.key(name))
    }
}

/// Flushes a directory's entries (new names) to disk.
fn sync_directory(directory: &Path) -> Result<()> {
    File::open(directory)
        .and_then(|handle| handle.sync_all())
        .context(|| format!("syncing directory {}", directory.display()))
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn read(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>> {
        let path = self.path(kind, name);
        fs::read(&path).context(|| format!("reading {}", path.display()))
    }

    fn read_into(&self, kind: ObjectKind, name: &str, buffer: &mut Vec<u8>) -> Result<()> {
        let path = self.path(kind, name);
        buffer.clear();
        File::open(&path)
            .and_then(|mut file| file.read_to_end(buffer))
            .context(|| format!("reading {}", path.display()))?;
        Ok(())
    }

    fn read_range(
        &self,
        kind: ObjectKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>> {
        let path = self.path(kind, name);
        let mut file = File::open(&path).context(|| format!("opening {}", path.display()))?;
        let length = usize::try_from(length)
            .map_err(|_| Error::InvalidArgument(format!("range of {length} bytes is too large")))?;
        // Read into reserved, uninitialised capacity (`read_to_end` uses the
        // file's `read_buf`): zero-filling a multi-MiB chunk buffer first was
        // 2-3% of a restore's samples.
        let mut buffer = Vec::with_capacity(length);
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.take(length as u64).read_to_end(&mut buffer))
            .map_err(|error| {
                Error::io(
                    format!(
                        "reading {length} bytes at offset {offset} of {}",
                        path.display()
                    ),
                    error,
                )
            })?;
        if buffer.len() < length {
            return Err(super::short_object(kind, name, offset, length));
        }
        Ok(buffer)
    }

    fn write_if_absent(&self, kind: ObjectKind, name: &str, bytes: &[u8]) -> Result<WriteOutcome> {
        let final_path = self.path(kind, name);
        if final_path.exists() {
            return Ok(WriteOutcome::AlreadyExisted);
        }
        let directory = final_path.parent().ok_or_else(|| {
            Error::InvalidArgument(format!("object key {name:?} has no directory"))
        })?;
        // Repositories created before a kind existed lack its directory.
        if kind == ObjectKind::Config || !directory.is_dir() {
            fs::create_dir_all(directory)
                .context(|| format!("creating {}", directory.display()))?;
        }
        let temp_path = directory.join(format!(
            ".tmp-{}-{}-{}",
            std::process::id(),
            self.temp_counter.fetch_add(1, Ordering::Relaxed),
            name.get(..16).unwrap_or(name)
        ));
        let result = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp_path)
                .context(|| format!("creating {}", temp_path.display()))?;
            file.write_all(bytes)
                .and_then(|()| file.sync_all())
                .context(|| format!("writing {}", temp_path.display()))?;
            drop(file);
            match fs::hard_link(&temp_path, &final_path) {
                Ok(()) => Ok(WriteOutcome::Created),
                Err(error) if error.kind() == ErrorKind::AlreadyExists => {
                    Ok(WriteOutcome::AlreadyExisted)
                }
                Err(error) => Err(Error::io(
                    format!("publishing {}", final_path.display()),
                    error,
                )),
            }
        })();
        // The temporary name is removed whatever happened; a failure here only leaves
        // a dot-file that listing ignores.
        let _ = fs::remove_file(&temp_path);
        let outcome = result?;
        if outcome == WriteOutcome::Created {
            sync_directory(directory)?;
        }
        Ok(outcome)
    }

    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>> {
        let top = self.root.join(kind.directory());
        let directories: Vec<PathBuf> = if kind == ObjectKind::Pack {
            let mut fans = Vec::new();
            for entry in fs::read_dir(&top).context(|| format!("listing {}", top.display()))? {
                let entry = entry.context(|| format!("listing {}", top.display()))?;
                if entry.file_type().map(|kind| kind.is_dir()).unwrap_or(false) {
                    fans.push(entry.path());
                }
            }
            fans
        } else if kind == ObjectKind::Config {
            return Ok(fs::metadata(self.root.join("config"))
                .map(|metadata| {
                    vec![ObjectInfo {
                        name: "config".to_string(),
                        size: metadata.len(),
                    }]
                })
                .unwrap_or_default());
        } else {
            vec![top]
        };
        let mut objects = Vec::new();
        for directory in directories {
            let entries = match fs::read_dir(&directory) {
                Ok(entries) => entries,
                Err(error) if error.kind() == ErrorKind::NotFound => continue,
                Err(error) => {
                    return Err(Error::io(format!("listing {}", directory.display()), error))
                }
            };
            for entry in entries {
                let entry = entry.context(|| format!("listing {}", directory.display()))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                let metadata = match entry.metadata() {
                    Ok(metadata) => metadata,
                    // Deleted between read_dir and stat (a concurrent prune).
                    Err(error) if error.kind() == ErrorKind::NotFound => continue,
                    Err(error) => {
                        return Err(Error::io(format!("stat {}", entry.path().display()), error))
                    }
                };
                if metadata.is_file() {
                    objects.push(ObjectInfo {
                        name,
                        size: metadata.len(),
                    });
                }
            }
        }
        Ok(objects)
    }

    fn delete(&self, kind: ObjectKind, name: &str) -> Result<()> {
        let path = self.path(kind, name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
            Err(error) => Err(Error::io(format!("deleting {}", path.display()), error)),
        }
    }

    fn exists(&self) -> Result<bool> {
        Ok(self.root.join("config").is_file())
    }

    fn create(&self) -> Result<()> {
        self.create_layout()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_backend_meets_the_contract() {
        let directory = tempfile::tempdir().unwrap();
        let backend = LocalBackend::new(directory.path().join("repo"));
        backend.create_layout().unwrap();
        crate::backend::contract::run_all(&backend);
        // No temporary files are left behind.
        let leftovers: Vec<_> = walkdir::WalkDir::new(directory.path())
            .min_depth(1)
            .into_iter()
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.file_name().to_string_lossy().starts_with(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
