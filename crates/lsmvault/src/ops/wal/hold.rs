//! The WAL holding directory: hard links to a database's WAL files, made
//! the moment they appear, so that their data outlives the database
//! deleting them (RocksDB's default `WAL_ttl_seconds=0` deletes an obsolete
//! WAL file at once, possibly before an archive round read its last records).
//!
//! Default place: `DBDIR/.lsmvault-wal-hold/` (hidden; `checkpoint`, `backup
//! --live` and backups of the directory leave it out). A link has the WAL
//! file's name; while the database has the file, link and file are one inode.
//!
//! Invariants:
//! - The holding directory is on the database's file system (a hard link
//!   cannot cross file systems): refused otherwise, naming both paths.
//! - A link is removed only once its segment's final content is archived:
//!   the database no longer had the file *before* the round read the link
//!   (so nothing wrote to it afterwards), and that round committed. The
//!   last round of a watcher and a one-shot archive also release links of
//!   files the database still has (what comes later, the database keeps).
//! - Links left by a killed watcher are read by the next archive run (they
//!   may be the only copy of their segment) before they are released. A
//!   one-shot archive (or `tag`) never releases the links of files the
//!   database still has while the watcher named in `.watcher` runs: those
//!   links are what keeps the watcher airtight.

use std::collections::BTreeSet;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::lsm::file_class::{file_number, WAL_HOLD_DIRECTORY};
use crate::repo::lock::{process_alive, process_start_time};

/// The file in the holding directory naming the watcher that keeps it:
/// `PID START` (its start time, so a reused pid does not look alive).
const OWNER_FILE: &str = ".watcher";

/// A database directory and its WAL holding directory.
#[derive(Debug, Clone)]
pub struct Holding {
    /// The database directory.
    database: PathBuf,
    /// The holding directory.
    path: PathBuf,
}

/// A WAL file found in the database directory, its `archive/` or the
/// holding directory: its path, file name and number.
pub(super) type SegmentFile = (PathBuf, String, u64);

/// `*.log` files directly in `place` (none when it cannot be listed).
pub(super) fn log_files(place: &Path) -> Vec<SegmentFile> {
    let Ok(entries) = fs::read_dir(place) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_file()))
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let number = file_number(&name).filter(|_| name.ends_with(".log"))?;
            Some((entry.path(), name, number))
        })
        .collect()
}

/// (device, inode) of a path, without following a symlink.
fn inode(path: &Path) -> Option<(u64, u64)> {
    fs::symlink_metadata(path)
        .ok()
        .map(|stat| (stat.dev(), stat.ino()))
}

impl Holding {
    /// The holding directory of `database`: `explicit`, or
    /// `DATABASE/.lsmvault-wal-hold`. Nothing is created.
    pub fn new(database: &Path, explicit: Option<&Path>) -> Self {
        Holding {
            database: database.to_path_buf(),
            path: explicit.map_or_else(|| database.join(WAL_HOLD_DIRECTORY), Path::to_path_buf),
        }
    }

    /// The holding directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Refuses a holding directory whose links would be the database's own
    /// files (the database directory or its `archive/`: releasing a "link"
    /// would delete a WAL file), or a directory of other files (`*.log`
    /// without the `.watcher` file a watcher writes).
    pub fn check(&self) -> Result<()> {
        let refuse = |why: &str| {
            Err(Error::InvalidArgument(format!(
                "{} cannot be the WAL holding directory of {}: {why}",
                self.path.display(),
                self.database.display()
            )))
        };
        // Followed: a symlink to the database directory is that directory.
        let directory = |path: &Path| fs::metadata(path).ok().map(|stat| (stat.dev(), stat.ino()));
        let Some(hold) = directory(&self.path) else {
            return Ok(());
        };
        let archive = self.database.join("archive");
        if [&self.database, &archive]
            .iter()
            .any(|place| directory(place) == Some(hold))
        {
            return refuse(
                "it is the database's own directory (its files would be removed as released links)",
            );
        }
        let is_default = self.path.file_name() == Some(WAL_HOLD_DIRECTORY.as_ref());
        if !is_default && !self.held().is_empty() && !self.path.join(OWNER_FILE).exists() {
            return refuse("it holds *.log files that no watcher put there");
        }
        Ok(())
    }

    /// Creates the holding directory (and refuses one on another file
    /// system than the database, where no link can be made), and records
    /// this process as the watcher that keeps it.
    pub fn create(&self) -> Result<()> {
        if !self.database.is_dir() {
            return Err(Error::SourceNotFound {
                path: self.database.clone(),
            });
        }
        self.check()?;
        fs::create_dir_all(&self.path)
            .map_err(|error| Error::io(format!("creating {}", self.path.display()), error))?;
        let device = |path: &Path| fs::metadata(path).map(|stat| stat.dev()).ok();
        if device(&self.path) != device(&self.database) {
            return Err(Error::CrossFilesystemHold {
                segment: self.database.clone(),
                hold: self.path.clone(),
            });
        }
        let owner = self.path.join(OWNER_FILE);
        let pid = std::process::id();
        let start = process_start_time(pid).map_or(String::new(), |start| start.to_string());
        fs::write(&owner, format!("{pid} {start}\n"))
            .map_err(|error| Error::io(format!("writing {}", owner.display()), error))
    }

    /// Whether another process that still runs keeps this holding
    /// directory (a watcher): then links of files the database still has
    /// are its business, not ours to release.
    fn kept_by_another(&self) -> bool {
        let Ok(text) = fs::read_to_string(self.path.join(OWNER_FILE)) else {
            return false;
        };
        let mut fields = text.split_whitespace();
        let Some(pid) = fields.next().and_then(|pid| pid.parse::<u32>().ok()) else {
            return false;
        };
        let start = fields.next().and_then(|start| start.parse().ok());
        pid != std::process::id() && process_alive(pid, start)
    }

    /// Hard-links the WAL file at `file` into the holding directory unless
    /// a link of that name is there. Returns whether a link was made; a
    /// file already gone is no error (the round reports the gap).
    pub fn hold(&self, file: &Path) -> Result<bool> {
        let Some(name) = file.file_name() else {
            return Ok(false);
        };
        let link = self.path.join(name);
        match fs::hard_link(file, &link) {
            Ok(()) => Ok(true),
            Err(error)
                if matches!(error.kind(), ErrorKind::AlreadyExists | ErrorKind::NotFound) =>
            {
                Ok(false)
            }
            Err(error) if error.raw_os_error() == Some(nix::libc::EXDEV) => {
                Err(Error::CrossFilesystemHold {
                    segment: file.to_path_buf(),
                    hold: self.path.clone(),
                })
            }
            Err(error) => Err(Error::io(
                format!("hard-linking {} to {}", link.display(), file.display()),
                error,
            )),
        }
    }

    /// Links every WAL file of the database directory and of its `archive/`
    /// not held yet. Returns how many links were made.
    pub fn hold_all(&self) -> Result<usize> {
        let mut made = 0;
        for place in [self.database.clone(), self.database.join("archive")] {
            for (path, _, _) in log_files(&place) {
                made += usize::from(self.hold(&path)?);
            }
        }
        Ok(made)
    }

    /// The links in the holding directory (none when it does not exist).
    pub(super) fn held(&self) -> Vec<SegmentFile> {
        log_files(&self.path)
    }

    /// Whether the database still has the file a link of `name` holds (in
    /// its directory or `archive/`, as the same inode).
    pub(super) fn database_has(&self, name: &str) -> bool {
        let Some(held) = inode(&self.path.join(name)) else {
            return false;
        };
        [
            self.database.join(name),
            self.database.join("archive").join(name),
        ]
        .iter()
        .any(|path| inode(path) == Some(held))
    }

    /// The names of the links whose file the database no longer has: read
    /// now, their content is final.
    pub(super) fn orphaned(&self) -> BTreeSet<String> {
        self.held()
            .into_iter()
            .map(|(_, name, _)| name)
            .filter(|name| !self.database_has(name))
            .collect()
    }

    /// Removes the links in `archived` (their content is committed) that
    /// were orphaned before they were read, and with `release_all` those
    /// whose file the database still has, unless a running watcher keeps
    /// the directory. An emptied default directory is removed then.
    /// Returns how many links were removed.
    pub(super) fn release(
        &self,
        archived: &BTreeSet<String>,
        orphaned: &BTreeSet<String>,
        release_all: bool,
    ) -> Result<u64> {
        let release_all = release_all && !self.kept_by_another();
        let mut removed = 0;
        for name in archived {
            let final_content = orphaned.contains(name);
            if !(final_content || (release_all && self.database_has(name))) {
                continue;
            }
            let link = self.path.join(name);
            match fs::remove_file(&link) {
                Ok(()) => removed += 1,
                Err(error) if error.kind() == ErrorKind::NotFound => {}
                Err(error) => return Err(Error::io(format!("removing {}", link.display()), error)),
            }
        }
        if release_all && self.held().is_empty() {
            let _ = fs::remove_file(self.path.join(OWNER_FILE));
            if self.path.file_name() == Some(WAL_HOLD_DIRECTORY.as_ref()) {
                // Fails (and stays) when something else was put there.
                let _ = fs::remove_dir(&self.path);
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database directory with one live `000008.log`, held by the default
    /// holding directory.
    fn holding_one_growing_log() -> (tempfile::TempDir, Holding) {
        let directory = tempfile::tempdir().unwrap();
        fs::write(directory.path().join("000008.log"), b"growing").unwrap();
        let holding = Holding::new(directory.path(), None);
        holding.create().unwrap();
        assert_eq!(holding.hold_all().unwrap(), 1);
        (directory, holding)
    }

    #[test]
    fn a_link_outlives_the_deleted_file_and_is_released_once_archived() {
        let directory = tempfile::tempdir().unwrap();
        let db = directory.path();
        fs::write(db.join("000007.log"), b"records").unwrap();
        let holding = Holding::new(db, None);
        holding.create().unwrap();
        assert_eq!(holding.hold_all().unwrap(), 1);
        assert_eq!(holding.hold_all().unwrap(), 0, "held once");
        assert!(holding.orphaned().is_empty());
        fs::remove_file(db.join("000007.log")).unwrap();
        let orphaned = holding.orphaned();
        assert_eq!(orphaned.len(), 1);
        let link = holding.path().join("000007.log");
        assert_eq!(fs::read(&link).unwrap(), b"records");
        // Not archived: kept, whatever the flags.
        holding.release(&BTreeSet::new(), &orphaned, true).unwrap();
        assert!(link.exists());
        let archived: BTreeSet<String> = ["000007.log".to_string()].into();
        assert_eq!(holding.release(&archived, &orphaned, true).unwrap(), 1);
        assert!(
            !holding.path().exists(),
            "the emptied default directory goes"
        );
    }

    #[test]
    fn a_link_of_a_file_the_database_has_is_released_only_at_the_end() {
        let (_directory, holding) = holding_one_growing_log();
        let archived: BTreeSet<String> = ["000008.log".to_string()].into();
        let orphaned = holding.orphaned();
        assert_eq!(holding.release(&archived, &orphaned, false).unwrap(), 0);
        assert_eq!(holding.release(&archived, &orphaned, true).unwrap(), 1);
        assert!(!holding.path().exists());
    }

    #[test]
    fn the_database_directory_or_a_directory_of_other_files_is_refused() {
        let directory = tempfile::tempdir().unwrap();
        let db = directory.path().join("db");
        fs::create_dir_all(db.join("archive")).unwrap();
        fs::write(db.join("000008.log"), b"the database's own").unwrap();
        let link = directory.path().join("link");
        std::os::unix::fs::symlink(&db, &link).unwrap();
        for place in [db.clone(), db.join("archive"), db.join("."), link] {
            let holding = Holding::new(&db, Some(&place));
            assert!(holding.create().is_err(), "{}", place.display());
            assert!(holding.check().is_err(), "{}", place.display());
        }
        let other = directory.path().join("other");
        fs::create_dir(&other).unwrap();
        fs::write(other.join("000001.log"), b"someone else's").unwrap();
        assert!(Holding::new(&db, Some(&other)).create().is_err());
        // A killed watcher's directory (its `.watcher` file) is accepted.
        fs::write(other.join(OWNER_FILE), "4000000\n").unwrap();
        assert!(Holding::new(&db, Some(&other)).create().is_ok());
        assert!(db.join("000008.log").exists());
    }

    #[test]
    fn links_of_a_running_watcher_are_not_released_by_another_run() {
        let (_directory, holding) = holding_one_growing_log();
        // pid 1 runs and is not us: as if a watcher kept the directory.
        fs::write(holding.path().join(OWNER_FILE), "1\n").unwrap();
        let archived: BTreeSet<String> = ["000008.log".to_string()].into();
        let orphaned = holding.orphaned();
        assert_eq!(holding.release(&archived, &orphaned, true).unwrap(), 0);
        // A dead watcher's directory is cleaned.
        fs::write(
            holding.path().join(OWNER_FILE),
            format!("{}\n", u32::MAX / 2),
        )
        .unwrap();
        assert_eq!(holding.release(&archived, &orphaned, true).unwrap(), 1);
        assert!(!holding.path().exists());
    }
}
