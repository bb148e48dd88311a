//! The WAL holding directory: hard links to a database's WAL files, made
//! the moment they appear, so that their data outlives the database
//! deleting them (RocksDB's default `WAL_ttl_seconds=0` deletes an obsolete
//! WAL file at once, possibly before an archive round read its last records).
//!
//! Default place: `DBDIR/.lsmvault-wal-hold/` (hidden; `checkpoint`, `backup
//! --live` and backups of the directory leave it out), or `--hold-dir`. It
//! has one part per repository, `REPOSITORY_ID/` (a local and an offsite
//! repository archiving one database each have a watcher): a run makes and
//! releases links only in its own repository's part, and reads the links of
//! every part (and those an earlier version left at the top). A link has the
//! WAL file's name; while the database has the file, link and file are one
//! inode.
//!
//! Invariants:
//! - The holding directory is on the database's file system (a hard link
//!   cannot cross file systems): refused otherwise, naming both paths.
//! - Only regular files named like WAL segments (`NUMBER.log`) are linked:
//!   a directory, FIFO, symlink or `app.log` is not the database's WAL.
//! - A link is removed only once its segment's final content is archived
//!   into the repository whose part holds it: the database no longer had
//!   the file *before* the round read the link (so nothing wrote to it
//!   afterwards), and that round committed. The last round of a watcher and
//!   a one-shot archive also release links of files the database still has
//!   (what comes later, the database keeps). Another repository's part is
//!   never released: its links may be the only copy that repository has.
//! - One watcher per repository part: its `.watcher` file (`PID START`)
//!   is locked while it runs, and a second watcher into the same part is
//!   refused, naming the first. Links left by a killed watcher are read by
//!   the next archive run (they may be the only copy of their segment)
//!   before they are released. A one-shot archive (or `tag`) never releases
//!   the links of files the database still has while the watcher named in
//!   `.watcher` runs: those links are what keeps the watcher airtight.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};
use crate::lsm::file_class::{file_number, WAL_HOLD_DIRECTORY};
use crate::lsm::read_regular_file;
use crate::repo::lock::{process_alive, process_start_time};

/// The file in a holding directory part naming the watcher that keeps it:
/// `PID START` (its start time, so a reused pid does not look alive).
/// Earlier versions wrote it at the top of the holding directory, some
/// with the pid alone: both are still read.
const OWNER_FILE: &str = ".watcher";

/// A database directory and its WAL holding directory, seen from one
/// repository.
#[derive(Debug, Clone)]
pub struct Holding {
    /// The database directory.
    database: PathBuf,
    /// The holding directory: one part per repository, and the links an
    /// earlier version left at its top.
    root: PathBuf,
    /// This repository's part, `root/REPOSITORY_ID`.
    path: PathBuf,
}

/// A watcher's claim on its part of the holding directory: the lock on its
/// `.watcher` file, released when dropped (or the process dies).
#[derive(Debug)]
pub struct Ownership {
    _file: Flock<File>,
}

/// A WAL file found in the database directory, its `archive/` or the
/// holding directory: its path, file name and number.
pub(super) type SegmentFile = (PathBuf, String, u64);

/// The segment number of a WAL file's name (`000123.log`), `None` for any
/// other name (`app.log`, `000123.log.tmp`).
fn wal_number(name: &str) -> Option<u64> {
    file_number(name).filter(|_| name.ends_with(".log"))
}

/// Whether `path` is a regular file (a symlink is not followed).
fn is_regular_file(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|stat| stat.file_type().is_file())
}

/// `*.log` regular files directly in `place` (none when it cannot be listed).
pub(super) fn log_files(place: &Path) -> Vec<SegmentFile> {
    let Ok(entries) = fs::read_dir(place) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_file()))
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let number = wal_number(&name)?;
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

/// The pid of the process that `place`'s `.watcher` file names, if it
/// still runs and is not this one.
fn live_owner(place: &Path) -> Option<u32> {
    // Never blocks on a FIFO put there.
    let bytes = read_regular_file(&place.join(OWNER_FILE)).ok()??;
    let text = String::from_utf8_lossy(&bytes);
    let mut fields = text.split_whitespace();
    let pid = fields.next()?.parse::<u32>().ok()?;
    let start = fields.next().and_then(|start| start.parse().ok());
    (pid != std::process::id() && process_alive(pid, start)).then_some(pid)
}

/// What this process writes into its `.watcher` file.
fn owner_text() -> String {
    let pid = std::process::id();
    let start = process_start_time(pid).map_or(String::new(), |start| start.to_string());
    format!("{pid} {start}\n")
}

impl Holding {
    /// The holding directory of `database` for the repository
    /// `repository_id`: `explicit`, or `DATABASE/.lsmvault-wal-hold`, and
    /// in it the repository's part. Nothing is created. An id that cannot
    /// be a directory name is refused.
    pub fn new(database: &Path, explicit: Option<&Path>, repository_id: &str) -> Result<Self> {
        let usable = (1..=128).contains(&repository_id.len())
            && repository_id.chars().all(|c| c.is_ascii_alphanumeric());
        if !usable {
            return Err(Error::InvalidArgument(format!(
                "repository id {repository_id:?} cannot name a part of the WAL holding directory (the repository's config is damaged: `lsmvault check`)"
            )));
        }
        let root = explicit.map_or_else(|| database.join(WAL_HOLD_DIRECTORY), Path::to_path_buf);
        Ok(Holding {
            database: database.to_path_buf(),
            path: root.join(repository_id),
            root,
        })
    }

    /// This repository's part of the holding directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The holding directory (every repository's part).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Refuses a holding directory whose links would be the database's own
    /// files (the database directory or its `archive/`: releasing a "link"
    /// would delete a WAL file), or a directory of other files (`*.log`
    /// without the `.watcher` file a watcher writes).
    pub fn check(&self) -> Result<()> {
        let refuse = |why: &str| {
            Err(Error::InvalidArgument(format!(
                "{} cannot be the WAL holding directory of {}: {why}",
                self.root.display(),
                self.database.display()
            )))
        };
        // Followed: a symlink to the database directory is that directory.
        let directory = |path: &Path| fs::metadata(path).ok().map(|stat| (stat.dev(), stat.ino()));
        let own = [&self.database, &self.database.join("archive")].map(|place| directory(place));
        let is_own = |place: &Path| directory(place).is_some_and(|hold| own.contains(&Some(hold)));
        if is_own(&self.root) || is_own(&self.path) {
            return refuse(
                "it is the database's own directory (its files would be removed as released links)",
            );
        }
        let is_default = self.root.file_name() == Some(WAL_HOLD_DIRECTORY.as_ref());
        if !is_default && !log_files(&self.root).is_empty() && !self.root.join(OWNER_FILE).exists()
        {
            return refuse("it holds *.log files that no watcher put there");
        }
        Ok(())
    }

    /// Creates this repository's part of the holding directory (and refuses
    /// one on another file system than the database, where no link can be
    /// made, or one another watcher keeps), and records this process as the
    /// watcher that keeps it, until the returned claim is dropped.
    pub fn create(&self) -> Result<Ownership> {
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
        let io = |error| Error::io(format!("writing {}", owner.display()), error);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&owner)
            .map_err(io)?;
        let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            // An earlier version's watcher does not lock: its pid decides.
            Ok(file) => match live_owner(&self.path) {
                Some(pid) => return Err(self.kept_by(Some(pid))),
                None => file,
            },
            Err((_, Errno::EWOULDBLOCK)) => return Err(self.kept_by(live_owner(&self.path))),
            Err((_, errno)) => return Err(io(errno.into())),
        };
        file.set_len(0).map_err(io)?;
        file.write_all(owner_text().as_bytes()).map_err(io)?;
        Ok(Ownership { _file: file })
    }

    /// The refusal of a second watcher into one part.
    fn kept_by(&self, pid: Option<u32>) -> Error {
        Error::WalHoldInUse {
            path: self.path.clone(),
            database: self.database.clone(),
            watcher: pid.map_or("another watcher".to_string(), |pid| {
                format!("the watcher of process {pid}")
            }),
        }
    }

    /// Makes this repository's part and its `.watcher` file again if they
    /// were removed (by hand) while a watcher runs; nothing otherwise.
    pub(super) fn reopen(&self) -> Result<()> {
        let owner = self.path.join(OWNER_FILE);
        if owner.exists() {
            return Ok(());
        }
        fs::create_dir_all(&self.path)
            .map_err(|error| Error::io(format!("creating {}", self.path.display()), error))?;
        fs::write(&owner, owner_text())
            .map_err(|error| Error::io(format!("writing {}", owner.display()), error))
    }

    /// Hard-links the WAL file at `file` into this repository's part unless
    /// a link of that name is there. Returns whether a link was made. A
    /// file already gone is no error (the round reports the gap), nor is
    /// anything that is not a regular file named like a WAL file.
    pub fn hold(&self, file: &Path) -> Result<bool> {
        let Some(name) = file.file_name() else {
            return Ok(false);
        };
        if name.to_str().and_then(wal_number).is_none() || !is_regular_file(file) {
            return Ok(false);
        }
        let link = self.path.join(name);
        let mut linked = fs::hard_link(file, &link);
        if linked
            .as_ref()
            .is_err_and(|error| error.kind() == ErrorKind::NotFound)
            && is_regular_file(file)
        {
            // The file is there, so the part is not: made again.
            self.reopen()?;
            linked = fs::hard_link(file, &link);
        }
        match linked {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == ErrorKind::AlreadyExists => Ok(false),
            // Deleted (or replaced by something else) meanwhile.
            Err(_) if !is_regular_file(file) => Ok(false),
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

    /// The links in this repository's part (none when it does not exist).
    pub(super) fn held(&self) -> Vec<SegmentFile> {
        log_files(&self.path)
    }

    /// Every place a run reads links from, its own part first: then the
    /// other repositories' parts, then the top (an earlier version's links).
    pub(super) fn link_places(&self) -> Vec<PathBuf> {
        let mut others: Vec<PathBuf> = fs::read_dir(&self.root)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
                    .map(|entry| entry.path())
                    .filter(|path| *path != self.path)
                    .collect()
            })
            .unwrap_or_default();
        others.sort();
        let mut places = vec![self.path.clone()];
        places.extend(others);
        places.push(self.root.clone());
        places
    }

    /// The places whose links this run may release: its own part, and the
    /// top (an earlier version's links, kept by no repository's part).
    fn releasable_places(&self) -> [&Path; 2] {
        [&self.path, &self.root]
    }

    /// Whether the database still has the file that `link` holds (in its
    /// directory or `archive/`, as the same inode).
    pub(super) fn database_has(&self, link: &Path) -> bool {
        let (Some(held), Some(name)) = (inode(link), link.file_name()) else {
            return false;
        };
        [
            self.database.join(name),
            self.database.join("archive").join(name),
        ]
        .iter()
        .any(|path| inode(path) == Some(held))
    }

    /// The links this run may release whose file the database no longer
    /// has: read now, their content is final.
    pub(super) fn orphaned(&self) -> BTreeSet<PathBuf> {
        self.releasable_places()
            .into_iter()
            .flat_map(log_files)
            .map(|(link, _, _)| link)
            .filter(|link| !self.database_has(link))
            .collect()
    }

    /// Removes the links (of this repository's part, and those an earlier
    /// version left at the top) named in `archived` (their content is
    /// committed) that were orphaned before they were read, and with
    /// `release_all` those whose file the database still has, unless a
    /// running watcher keeps their place. An emptied part is removed then,
    /// and the default directory once it is empty. Returns how many links
    /// were removed.
    pub(super) fn release(
        &self,
        archived: &BTreeSet<String>,
        orphaned: &BTreeSet<PathBuf>,
        release_all: bool,
    ) -> Result<u64> {
        let mut removed = 0;
        for place in self.releasable_places() {
            let release_all = release_all && live_owner(place).is_none();
            for (link, name, _) in log_files(place) {
                let final_content = orphaned.contains(&link);
                if !archived.contains(&name)
                    || !(final_content || (release_all && self.database_has(&link)))
                {
                    continue;
                }
                match fs::remove_file(&link) {
                    Ok(()) => removed += 1,
                    Err(error) if error.kind() == ErrorKind::NotFound => {}
                    Err(error) => {
                        return Err(Error::io(format!("removing {}", link.display()), error))
                    }
                }
            }
            if release_all && log_files(place).is_empty() {
                let _ = fs::remove_file(place.join(OWNER_FILE));
            }
        }
        if release_all && live_owner(&self.path).is_none() {
            // Fails (and stays) when links or something else are there.
            let _ = fs::remove_dir(&self.path);
        }
        if release_all && self.root.file_name() == Some(WAL_HOLD_DIRECTORY.as_ref()) {
            // Fails (and stays) while another repository's part is there.
            let _ = fs::remove_dir(&self.root);
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPOSITORY: &str = "0123abcd";

    fn holding(db: &Path, explicit: Option<&Path>) -> Holding {
        Holding::new(db, explicit, REPOSITORY).unwrap()
    }

    /// A database directory with one live `000008.log`, held by the default
    /// holding directory (the claim on it dropped: as a killed watcher's).
    fn holding_one_growing_log() -> (tempfile::TempDir, Holding) {
        let directory = tempfile::tempdir().unwrap();
        fs::write(directory.path().join("000008.log"), b"growing").unwrap();
        let holding = holding(directory.path(), None);
        drop(holding.create().unwrap());
        assert_eq!(holding.hold_all().unwrap(), 1);
        (directory, holding)
    }

    fn names(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn a_link_outlives_the_deleted_file_and_is_released_once_archived() {
        let directory = tempfile::tempdir().unwrap();
        let db = directory.path();
        fs::write(db.join("000007.log"), b"records").unwrap();
        let holding = holding(db, None);
        let _owner = holding.create().unwrap();
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
        let archived = names(&["000007.log"]);
        assert_eq!(holding.release(&archived, &orphaned, true).unwrap(), 1);
        assert!(
            !holding.root().exists(),
            "the emptied default directory goes"
        );
    }

    #[test]
    fn a_link_of_a_file_the_database_has_is_released_only_at_the_end() {
        let (_directory, holding) = holding_one_growing_log();
        let archived = names(&["000008.log"]);
        let orphaned = holding.orphaned();
        assert_eq!(holding.release(&archived, &orphaned, false).unwrap(), 0);
        assert_eq!(holding.release(&archived, &orphaned, true).unwrap(), 1);
        assert!(!holding.root().exists());
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
            let holding = holding(&db, Some(&place));
            assert!(holding.create().is_err(), "{}", place.display());
            assert!(holding.check().is_err(), "{}", place.display());
        }
        // The repository's part cannot be the database directory either.
        let parent = holding(&directory.path().join(REPOSITORY), Some(directory.path()));
        fs::create_dir(directory.path().join(REPOSITORY)).unwrap();
        assert!(parent.check().is_err());
        let other = directory.path().join("other");
        fs::create_dir(&other).unwrap();
        fs::write(other.join("000001.log"), b"someone else's").unwrap();
        assert!(holding(&db, Some(&other)).create().is_err());
        // An earlier version's killed watcher (its `.watcher` file) is accepted.
        fs::write(other.join(OWNER_FILE), "4000000\n").unwrap();
        assert!(holding(&db, Some(&other)).create().is_ok());
        assert!(db.join("000008.log").exists());
        assert!(Holding::new(&db, None, "../x").is_err());
        assert!(Holding::new(&db, None, "").is_err());
    }

    #[test]
    fn links_of_a_running_watcher_are_not_released_by_another_run() {
        let (_directory, holding) = holding_one_growing_log();
        // pid 1 runs and is not us: as if a watcher kept the directory.
        fs::write(holding.path().join(OWNER_FILE), "1\n").unwrap();
        let archived = names(&["000008.log"]);
        let orphaned = holding.orphaned();
        assert_eq!(holding.release(&archived, &orphaned, true).unwrap(), 0);
        // A dead watcher's directory is cleaned.
        fs::write(
            holding.path().join(OWNER_FILE),
            format!("{}\n", u32::MAX / 2),
        )
        .unwrap();
        assert_eq!(holding.release(&archived, &orphaned, true).unwrap(), 1);
        assert!(!holding.root().exists());
    }

    #[test]
    fn a_second_claim_on_one_part_is_refused_another_repository_has_its_own() {
        let directory = tempfile::tempdir().unwrap();
        let db = directory.path();
        fs::write(db.join("000008.log"), b"growing").unwrap();
        let first = holding(db, None);
        let owner = first.create().unwrap();
        // The lock refuses even this process's second claim.
        assert!(first.create().is_err());
        let offsite = Holding::new(db, None, "ffff0000").unwrap();
        let offsite_owner = offsite.create().unwrap();
        assert_eq!(first.hold_all().unwrap(), 1);
        assert_eq!(offsite.hold_all().unwrap(), 1);
        // The offsite part's end releases nothing of the first part.
        let archived = names(&["000008.log"]);
        let orphaned = offsite.orphaned();
        assert_eq!(offsite.release(&archived, &orphaned, true).unwrap(), 1);
        drop(offsite_owner);
        assert!(!offsite.path().exists());
        assert!(first.path().join("000008.log").exists());
        assert_eq!(offsite.link_places()[1], first.path());
        drop(owner);
        assert!(first.create().is_ok(), "a dropped claim is free again");
    }

    #[test]
    fn links_an_earlier_version_left_at_the_top_are_read_and_released() {
        let directory = tempfile::tempdir().unwrap();
        let db = directory.path();
        let holding = holding(db, None);
        fs::create_dir(holding.root()).unwrap();
        for name in ["000007.log", "000008.log"] {
            fs::write(db.join(name), b"records").unwrap();
            fs::hard_link(db.join(name), holding.root().join(name)).unwrap();
        }
        fs::remove_file(db.join("000007.log")).unwrap();
        let top = |name: &str| holding.root().join(name);
        // A running watcher of that version: only the final content goes.
        fs::write(top(OWNER_FILE), "1\n").unwrap();
        let orphaned = holding.orphaned();
        assert_eq!(orphaned, [top("000007.log")].into());
        assert_eq!(
            holding.link_places().last(),
            Some(&holding.root().to_path_buf())
        );
        let archived = names(&["000007.log", "000008.log"]);
        assert_eq!(holding.release(&archived, &orphaned, true).unwrap(), 1);
        assert!(top("000008.log").exists());
        // Dead: everything archived goes, and the directory with it.
        fs::write(top(OWNER_FILE), format!("{}\n", u32::MAX / 2)).unwrap();
        assert_eq!(holding.release(&archived, &orphaned, true).unwrap(), 1);
        assert!(!holding.root().exists());
    }

    #[test]
    fn only_regular_files_named_like_wal_files_are_held() {
        let directory = tempfile::tempdir().unwrap();
        let db = directory.path();
        fs::create_dir(db.join("000009.log")).unwrap();
        fs::write(db.join("app.log"), b"not a WAL").unwrap();
        std::os::unix::fs::symlink("/dev/zero", db.join("000010.log")).unwrap();
        let holding = holding(db, None);
        let _owner = holding.create().unwrap();
        for name in ["000009.log", "app.log", "000010.log", "000011.log"] {
            assert!(!holding.hold(&db.join(name)).unwrap(), "{name}");
        }
        assert!(holding.held().is_empty());
        // A part removed under a watcher is made again, not a silent miss.
        fs::write(db.join("000012.log"), b"records").unwrap();
        fs::remove_dir_all(holding.root()).unwrap();
        assert!(holding.hold(&db.join("000012.log")).unwrap());
        assert!(holding.path().join(OWNER_FILE).exists());
    }
}
