//! The embedded default backend: a repository in a local directory.
//!
//! Layout: the object of kind `K` and name `N` is the file `root/K.key(N)`
//! (packs fanned out as `data/xx/<id>`), byte for byte its content.
//!
//! Replacing `config` (a format migration) is the one rename: `write temp
//! file → fsync → rename(temp, config) → fsync directory`; rename replaces
//! the name atomically, so a reader or a crash sees the old or the new file.
//!
//! Publication is one helper, [`publish_durably`]: `write temp file → fsync →
//! link(temp, final) → unlink temp → fsync directory`. `link` fails when the
//! final name exists, which gives the create-if-absent semantics of
//! [`Backend::write_if_absent`] without a window in which two writers could
//! clobber each other. Temporary files start with a dot and are never listed.
//! This backend never returns [`Error::Transient`]: a local disk does not
//! throttle.
//!
//! Permissions, as restic's: directories it creates are 0700 and objects
//! 0400 (the process umask can only narrow them); a directory that already
//! existed (the root of `init` into an existing directory) keeps its mode.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Backend, Error, ObjectInfo, ObjectKind, Result, Subject, WriteOutcome};

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
            create_private_directory(directory).map_err(|error| {
                Error::other(
                    Subject::Location,
                    format!("creating {}", directory.display()),
                    error,
                )
            })?;
        }
        sync_directory(&self.root, || Subject::Location)?;
        sync_directory(&self.root.join("data"), || Subject::Location)
    }

    fn path(&self, kind: ObjectKind, name: &str) -> PathBuf {
        self.root.join(kind.key(name))
    }

    /// A name in `directory` no other writer uses: this process's id, a
    /// per-backend counter and the start of the object's name. It starts with
    /// a dot, so listing skips it.
    fn temp_path(&self, directory: &Path, name: &str) -> PathBuf {
        directory.join(format!(
            ".tmp-{}-{}-{}",
            std::process::id(),
            self.temp_counter.fetch_add(1, Ordering::Relaxed),
            name.get(..16).unwrap_or(name)
        ))
    }
}

/// The mode of every directory the backend creates: the owner's alone, as
/// restic does (an unencrypted repository is the data itself, and key files
/// invite offline password guessing). Existing directories keep theirs.
const DIRECTORY_MODE: u32 = 0o700;

/// The mode of every object the backend writes: read-only for the owner.
/// Objects are immutable once published (replacing `config` is a rename,
/// deleting needs only the directory), so nobody needs to write them.
const OBJECT_MODE: u32 = 0o400;

/// Creates `directory` and any missing parents with [`DIRECTORY_MODE`].
fn create_private_directory(directory: &Path) -> std::io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIRECTORY_MODE)
        .create(directory)
}

/// Flushes a directory's entries (new names) to disk.
fn sync_directory(directory: &Path, subject: impl FnOnce() -> Subject) -> Result<()> {
    File::open(directory)
        .and_then(|handle| handle.sync_all())
        .map_err(|error| {
            Error::other(
                subject(),
                format!("syncing directory {}", directory.display()),
                error,
            )
        })
}

/// Creates `directory` (and its parents) if missing, and makes the new name
/// durable by syncing the directory that holds it. An existing directory is
/// left alone (no sync: its parent may not even be readable).
fn ensure_directory(directory: &Path, subject: impl Fn() -> Subject) -> Result<()> {
    if directory.is_dir() {
        return Ok(());
    }
    create_private_directory(directory).map_err(|error| {
        Error::other(
            subject(),
            format!("creating {}", directory.display()),
            error,
        )
    })?;
    match directory.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_directory(parent, subject),
        _ => Ok(()),
    }
}

/// The one durable publication of the local backend: writes `bytes` to the
/// fresh `temp_path`, fsyncs it, links it to `final_path`, removes the
/// temporary name and fsyncs the directory.
///
/// `link`, not `rename`: `rename` silently replaces an existing target, which
/// would let two writers of one name clobber each other (and
/// `renameat2(RENAME_NOREPLACE)` is Linux-only and not on every file system).
/// `link` fails with `EEXIST` instead, reported as [`Error::AlreadyExists`];
/// the object is published whole or not at all, since the linked inode was
/// complete and synced before it got its name.
fn publish_durably(
    kind: ObjectKind,
    name: &str,
    temp_path: &Path,
    final_path: &Path,
    bytes: &[u8],
) -> Result<()> {
    let subject = || Subject::Object {
        kind,
        name: name.to_string(),
    };
    let linked = (|| {
        write_synced_temporary(temp_path, bytes, &subject)?;
        let context = || format!("publishing {}", final_path.display());
        fs::hard_link(temp_path, final_path).map_err(|error| match error.kind() {
            ErrorKind::AlreadyExists => Error::AlreadyExists {
                kind,
                name: name.to_string(),
                context: context(),
                source: Box::new(error),
            },
            _ => Error::other(subject(), context(), error),
        })
    })();
    // The temporary name is removed whatever happened; a failure here only leaves
    // a dot-file that listing ignores.
    let _ = fs::remove_file(temp_path);
    linked?;
    match final_path.parent() {
        Some(directory) => sync_directory(directory, subject),
        None => Ok(()),
    }
}

/// Writes `bytes` to a new file at `temp_path` (never an existing one) and
/// syncs it, so that the name it is then given holds complete data.
fn write_synced_temporary(
    temp_path: &Path,
    bytes: &[u8],
    subject: &dyn Fn() -> Subject,
) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(OBJECT_MODE)
        .open(temp_path)
        .map_err(|error| {
            Error::other(
                subject(),
                format!("creating {}", temp_path.display()),
                error,
            )
        })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|error| Error::other(subject(), format!("writing {}", temp_path.display()), error))
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn read(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>> {
        let path = self.path(kind, name);
        fs::read(&path).map_err(|error| {
            Error::object_io(kind, name, format!("reading {}", path.display()), error)
        })
    }

    fn read_into(&self, kind: ObjectKind, name: &str, buffer: &mut Vec<u8>) -> Result<()> {
        let path = self.path(kind, name);
        buffer.clear();
        File::open(&path)
            .and_then(|mut file| file.read_to_end(buffer))
            .map_err(|error| {
                Error::object_io(kind, name, format!("reading {}", path.display()), error)
            })?;
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
        let mut file = File::open(&path).map_err(|error| {
            Error::object_io(kind, name, format!("opening {}", path.display()), error)
        })?;
        let short = || Error::ShortObject {
            kind,
            name: name.to_string(),
            offset,
            length,
        };
        let reading = |error: std::io::Error| {
            Error::other(
                Subject::Object {
                    kind,
                    name: name.to_string(),
                },
                format!(
                    "reading {length} bytes at offset {offset} of {}",
                    path.display()
                ),
                error,
            )
        };
        let Ok(wanted) = usize::try_from(length) else {
            return Err(reading(std::io::Error::new(
                ErrorKind::InvalidInput,
                "range too large for this platform's memory",
            )));
        };
        // The range is checked against the file's real size before anything
        // is allocated: a length an index or header declares (up to 4 GiB) is
        // only believed as far as the file goes. This also makes an empty
        // range past the end short, as the contract says.
        let size = file.metadata().map_err(reading)?.len();
        if offset.checked_add(length).is_none_or(|end| end > size) {
            return Err(short());
        }
        if wanted == 0 {
            return Ok(Vec::new());
        }
        // Read into reserved, uninitialised capacity (`read_to_end` uses the
        // file's `read_buf`): zero-filling a multi-MiB chunk buffer first was
        // 2-3% of a restore's samples.
        let mut buffer = Vec::with_capacity(wanted);
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.take(length).read_to_end(&mut buffer))
            .map_err(reading)?;
        if buffer.len() < wanted {
            return Err(short());
        }
        Ok(buffer)
    }

    fn write_if_absent(&self, kind: ObjectKind, name: &str, bytes: &[u8]) -> Result<WriteOutcome> {
        let final_path = self.path(kind, name);
        if final_path.exists() {
            return Ok(WriteOutcome::AlreadyExisted);
        }
        let subject = || Subject::Object {
            kind,
            name: name.to_string(),
        };
        let directory = final_path.parent().ok_or_else(|| {
            Error::other(
                subject(),
                format!("publishing {}", final_path.display()),
                std::io::Error::new(ErrorKind::InvalidInput, "the object key has no directory"),
            )
        })?;
        // Repositories created before a kind existed lack its directory (and
        // `config` may be written to a root nobody created).
        ensure_directory(directory, subject)?;
        let temp_path = self.temp_path(directory, name);
        match publish_durably(kind, name, &temp_path, &final_path, bytes) {
            Ok(()) => Ok(WriteOutcome::Created),
            Err(Error::AlreadyExists { .. }) => Ok(WriteOutcome::AlreadyExisted),
            Err(error) => Err(error),
        }
    }

    fn replace_config(&self, bytes: &[u8]) -> Result<()> {
        let kind = ObjectKind::Config;
        let subject = || Subject::Object {
            kind,
            name: "config".to_string(),
        };
        ensure_directory(&self.root, subject)?;
        let final_path = self.path(kind, "config");
        let temp_path = self.temp_path(&self.root, "config");
        let replaced = (|| {
            write_synced_temporary(&temp_path, bytes, &subject)?;
            fs::rename(&temp_path, &final_path).map_err(|error| {
                Error::other(
                    subject(),
                    format!("replacing {}", final_path.display()),
                    error,
                )
            })
        })();
        if replaced.is_err() {
            // Only a failed rename leaves the temporary name; it is a dot-file
            // that listing ignores either way.
            let _ = fs::remove_file(&temp_path);
        }
        replaced?;
        sync_directory(&self.root, subject)
    }

    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>> {
        let listing_error = |context: String, error: std::io::Error| {
            Error::other(Subject::Listing(kind), context, error)
        };
        let top = self.root.join(kind.directory());
        let directories: Vec<PathBuf> = if kind == ObjectKind::Pack {
            let mut fans = Vec::new();
            let listing = || format!("listing {}", top.display());
            for entry in fs::read_dir(&top).map_err(|error| listing_error(listing(), error))? {
                let entry = entry.map_err(|error| listing_error(listing(), error))?;
                if entry.file_type().map(|kind| kind.is_dir()).unwrap_or(false) {
                    fans.push(entry.path());
                }
            }
            fans
        } else if kind == ObjectKind::Config {
            let path = self.root.join("config");
            return match fs::metadata(&path) {
                Ok(metadata) => Ok(vec![ObjectInfo {
                    name: "config".to_string(),
                    size: metadata.len(),
                    modified: metadata.modified().ok(),
                }]),
                Err(error) if error.kind() == ErrorKind::NotFound => Ok(Vec::new()),
                Err(error) => Err(listing_error(format!("stat {}", path.display()), error)),
            };
        } else {
            vec![top]
        };
        let mut objects = Vec::new();
        for directory in directories {
            let listing = || format!("listing {}", directory.display());
            let entries = match fs::read_dir(&directory) {
                Ok(entries) => entries,
                Err(error) if error.kind() == ErrorKind::NotFound => continue,
                Err(error) => return Err(listing_error(listing(), error)),
            };
            for entry in entries {
                let entry = entry.map_err(|error| listing_error(listing(), error))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                let metadata = match entry.metadata() {
                    Ok(metadata) => metadata,
                    // Deleted between read_dir and stat (a concurrent prune).
                    Err(error) if error.kind() == ErrorKind::NotFound => continue,
                    Err(error) => {
                        return Err(listing_error(
                            format!("stat {}", entry.path().display()),
                            error,
                        ))
                    }
                };
                if metadata.is_file() {
                    objects.push(ObjectInfo {
                        name,
                        size: metadata.len(),
                        modified: metadata.modified().ok(),
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
            Err(error) => Err(Error::other(
                Subject::Object {
                    kind,
                    name: name.to_string(),
                },
                format!("deleting {}", path.display()),
                error,
            )),
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
        let mut cases = 0;
        crate::backend::conformance::run_all(|| {
            cases += 1;
            LocalBackend::new(directory.path().join(format!("case-{cases}")))
        });
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
