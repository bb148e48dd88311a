//! Checkpoints of a live LSM database directory: hard links for immutable
//! files, copies for mutable ones, with an optional freeze/thaw around them.
//!
//! The result is crash-consistent when writes are paused while it is taken:
//! the freeze command runs before the directory is listed, the thaw command
//! right after the last link or copy, and the time in between is measured and
//! reported. Once the freeze started the thaw runs exactly once, whatever
//! fails (see [`super::pause`]); an [`Interrupt`] stops the linking between
//! two files, thaws, and removes the partial checkpoint.
//!
//! Immutable files (SSTs, blob files, rotated WAL segments) are hard-linked,
//! which costs nothing; mutable ones (MANIFEST, CURRENT, OPTIONS, IDENTITY,
//! the active WAL) are copied. `LOCK` and info logs are skipped (which files
//! are which: [`super::file_class`]). When the destination is on another file
//! system, links become copies.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::interrupt::Interrupt;

use super::file_class::{file_number, matches_any_in_directory, FileClasses};
use super::pause::{freeze, Thaw, DEFAULT_COMMAND_TIMEOUT};

/// Options for [`checkpoint`].
#[derive(Debug, Clone)]
pub struct CheckpointOptions {
    /// Shell command run before the files are linked (e.g. `kill -STOP 1234`).
    pub freeze_command: Option<String>,
    /// Shell command run right after (e.g. `kill -CONT 1234`); also run when
    /// the freeze or the checkpoint fails, so a frozen writer is never left
    /// frozen. A freeze command without one is refused.
    pub thaw_command: Option<String>,
    /// How long the freeze (and the thaw) command may run before it is
    /// killed and counted as failed.
    pub command_timeout: Duration,
    /// Which files are hard-linked, copied or left out (RocksDB and LevelDB
    /// conventions by default).
    pub classes: FileClasses,
    /// Accept a destination on another file system than the source, where
    /// every file is copied while writes are paused. Without it such a
    /// checkpoint is refused ([`Error::CrossFilesystemCheckpoint`]) before
    /// the freeze.
    pub allow_copy: bool,
    /// Polled between files: once triggered the checkpoint thaws, removes
    /// what it linked and returns [`Error::Interrupted`].
    pub interrupt: Interrupt,
}

impl Default for CheckpointOptions {
    fn default() -> Self {
        CheckpointOptions {
            freeze_command: None,
            thaw_command: None,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            classes: FileClasses::default(),
            allow_copy: false,
            interrupt: Interrupt::default(),
        }
    }
}

/// What a checkpoint did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckpointReport {
    /// The checkpoint directory, created by [`checkpoint`].
    pub destination: PathBuf,
    /// Files hard-linked: immutable files and rotated WAL segments.
    pub linked: u64,
    /// Files copied because they may still change (MANIFEST, CURRENT,
    /// OPTIONS, IDENTITY, the active WAL segment); links that became copies
    /// are counted in `cross_device_copies` instead.
    pub copied: u64,
    /// Entries left out: skip-class files (`LOCK`, info logs, temporaries),
    /// anything neither a regular file nor a directory, and files the
    /// database deleted between listing and linking.
    pub skipped: u64,
    /// Bytes written by copies, cross-device copies included.
    pub bytes_copied: u64,
    /// Links that crossed file systems and became copies.
    pub cross_device_copies: u64,
    /// Time between the freeze command's start and the thaw command's end
    /// (the link-and-copy time when there are none).
    pub pause_seconds: f64,
    /// Temporary checkpoints of earlier `backup --live` runs that were
    /// killed before removing theirs, found beside the source and removed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub leftovers_removed: Vec<PathBuf>,
}

/// Takes a checkpoint of `source` into `destination` (which must not exist).
pub fn checkpoint(
    source: &Path,
    destination: &Path,
    options: &CheckpointOptions,
) -> Result<CheckpointReport> {
    checkpoint_then(source, destination, options, || ())
}

/// As [`checkpoint`], for a database that the calling process pauses itself
/// (an embedded engine such as fjall, whose writers the application holds):
/// `resume` runs right after the last link or copy — before the checkpoint
/// is synced, so the pause does not include the fsyncs — and before the thaw
/// command, if any. It runs once whether the links succeeded or failed; when
/// the checkpoint is refused before linking starts it is dropped without
/// being called (what it owns, such as a lock guard, is released then).
pub fn checkpoint_then(
    source: &Path,
    destination: &Path,
    options: &CheckpointOptions,
    resume: impl FnOnce(),
) -> Result<CheckpointReport> {
    if !source.is_dir() {
        return Err(Error::SourceNotFound {
            path: source.to_path_buf(),
        });
    }
    if destination.exists() {
        return Err(Error::DestinationExists {
            path: destination.to_path_buf(),
        });
    }
    if options.freeze_command.is_some() && options.thaw_command.is_none() {
        return Err(Error::InvalidArgument(
            "a freeze command needs a thaw command: without one the writer would stay frozen"
                .to_string(),
        ));
    }
    check_destination(source, destination, options.allow_copy)?;
    options.interrupt.check("starting the checkpoint")?;
    let mut report = CheckpointReport {
        destination: destination.to_path_buf(),
        ..CheckpointReport::default()
    };
    let paused = Instant::now();
    // Armed before the freeze starts: a freeze that fails may have half-happened.
    let mut thaw = Thaw::arm(options.thaw_command.as_deref(), options.command_timeout);
    let frozen = match &options.freeze_command {
        Some(command) => freeze(command, options.command_timeout, &options.interrupt),
        None => Ok(()),
    };
    let copied = frozen.and_then(|()| {
        let mut copier = Copier {
            classes: &options.classes,
            interrupt: &options.interrupt,
            report: &mut report,
        };
        copier.copy_tree(source, destination, true)
    });
    resume();
    let outcome = thaw.run(copied);
    report.pause_seconds = paused.elapsed().as_secs_f64();
    if let Err(error) = outcome {
        let _ = fs::remove_dir_all(destination);
        return Err(error);
    }
    sync_tree(destination)?;
    Ok(report)
}

/// The refusals [`checkpoint`] makes before it freezes anything: a
/// destination inside the source, and (unless `allow_copy`) one on another
/// file system. For callers that pause writers themselves and then call
/// [`link_checkpoint`] (a cluster backup freezes every shard first).
pub fn check_destination(source: &Path, destination: &Path, allow_copy: bool) -> Result<()> {
    refuse_destination_inside(source, destination)?;
    if !allow_copy {
        refuse_other_file_system(source, destination)?;
    }
    Ok(())
}

/// The linking part of [`checkpoint`] alone, for a caller that has already
/// paused the writer (and thaws it afterwards): `source` is recreated at
/// `destination` (which must not exist), immutable files linked, across
/// file systems copied. On failure (an [`Interrupt`] included) what was
/// linked is removed. Not synced: the caller reads it at once.
pub fn link_checkpoint(
    source: &Path,
    destination: &Path,
    classes: &FileClasses,
    interrupt: &Interrupt,
) -> Result<CheckpointReport> {
    let mut report = CheckpointReport {
        destination: destination.to_path_buf(),
        ..CheckpointReport::default()
    };
    let started = Instant::now();
    let copied = Copier {
        classes,
        interrupt,
        report: &mut report,
    }
    .copy_tree(source, destination, true);
    report.pause_seconds = started.elapsed().as_secs_f64();
    if let Err(error) = copied {
        let _ = fs::remove_dir_all(destination);
        return Err(error);
    }
    Ok(report)
}

/// The device of the nearest existing ancestor of `path` (the destination
/// does not exist yet; its parent may not either: `create_dir_all`).
fn device_of_nearest(path: &Path) -> Option<u64> {
    path.ancestors()
        .find_map(|ancestor| fs::metadata(ancestor).ok())
        .map(|metadata| metadata.dev())
}

/// Links across file systems are copies: checked before the freeze, so a
/// database is never paused for a copy of all its files unasked.
fn refuse_other_file_system(source: &Path, destination: &Path) -> Result<()> {
    let absolute = std::path::absolute(destination).unwrap_or_else(|_| destination.to_path_buf());
    match (
        fs::metadata(source).map(|metadata| metadata.dev()).ok(),
        device_of_nearest(&absolute),
    ) {
        (Some(source_device), Some(destination_device)) if source_device != destination_device => {
            Err(Error::CrossFilesystemCheckpoint {
                database: source.to_path_buf(),
                destination: destination.to_path_buf(),
            })
        }
        _ => Ok(()),
    }
}

/// A destination inside the source would be copied into itself, level after
/// level, until the path is too long (regression: `checkpoint SRC SRC/sub`).
/// Compared on canonical paths: the destination does not exist yet, so its
/// nearest existing ancestor is what gets resolved.
fn refuse_destination_inside(source: &Path, destination: &Path) -> Result<()> {
    let source = fs::canonicalize(source).context(|| format!("resolving {}", source.display()))?;
    let absolute = std::env::current_dir()
        .context(|| "reading the current directory".to_string())?
        .join(destination);
    // `..` taken lexically: the part that does not exist yet has no links.
    let mut lexical = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::ParentDir => {
                lexical.pop();
            }
            Component::CurDir => {}
            other => lexical.push(other),
        }
    }
    let mut existing = lexical.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => break,
        }
    }
    let mut resolved =
        fs::canonicalize(existing).context(|| format!("resolving {}", existing.display()))?;
    resolved.extend(rest.iter().rev());
    if resolved.starts_with(&source) {
        return Err(Error::InvalidArgument(format!(
            "checkpoint destination {} is inside the database directory {}",
            destination.display(),
            source.display()
        )));
    }
    Ok(())
}

/// Links and copies one tree, counting into the report.
struct Copier<'a> {
    classes: &'a FileClasses,
    interrupt: &'a Interrupt,
    report: &'a mut CheckpointReport,
}

impl Copier<'_> {
    /// Recreates `source` at `destination`: immutable files and rotated WAL
    /// segments linked, the rest copied, skipped names left out.
    fn copy_tree(&mut self, source: &Path, destination: &Path, top_level: bool) -> Result<()> {
        fs::create_dir(destination).context(|| format!("creating {}", destination.display()))?;
        let names = list_directory(source)?;
        let directory = (!top_level)
            .then(|| {
                source
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
            })
            .flatten();
        let directory = directory.as_deref();
        let newest_wal = self.newest_active_wal(&names, directory, top_level);
        for (name, file_type) in names {
            self.interrupt.check("linking the checkpoint")?;
            let from = source.join(&name);
            let to = destination.join(&name);
            if matches_any_in_directory(&self.classes.skip, directory, &name) {
                self.report.skipped += 1;
            } else if file_type.is_dir() {
                self.copy_tree(&from, &to, false)?;
            } else if !file_type.is_file() {
                self.report.skipped += 1;
            } else {
                let is_wal = matches_any_in_directory(&self.classes.wal, directory, &name);
                let link = matches_any_in_directory(&self.classes.immutable, directory, &name)
                    || (is_wal && file_number(&name) != newest_wal);
                if link {
                    self.link_file(&from, &to)?;
                } else {
                    self.report.bytes_copied += copy_file(&from, &to)?;
                    self.report.copied += 1;
                }
            }
        }
        Ok(())
    }

    /// The number of the active (newest) WAL segment among `names`, the
    /// entries of `directory` (`None`: the database directory itself).
    ///
    /// The active WAL is the newest segment of the database directory itself
    /// (plain patterns such as `*.log`) or of the directory a pattern names
    /// (fjall's `journals/*`); older ones, and segments that plain patterns
    /// find in subdirectories (RocksDB's `archive/`), are rotated and immutable.
    fn newest_active_wal(
        &self,
        names: &[(String, fs::FileType)],
        directory: Option<&str>,
        top_level: bool,
    ) -> Option<u64> {
        let active_wal_patterns: Vec<String> = self
            .classes
            .wal
            .iter()
            .filter(|pattern| match (pattern.rsplit_once('/'), directory) {
                (None, _) => top_level,
                (Some((wanted, _)), Some(here)) => wanted == here,
                (Some(_), None) => false,
            })
            .cloned()
            .collect();
        names
            .iter()
            .filter(|(name, kind)| {
                kind.is_file() && matches_any_in_directory(&active_wal_patterns, directory, name)
            })
            .filter_map(|(name, _)| file_number(name))
            .max()
    }

    /// Hard-links `from` to `to`; across file systems, copies it instead.
    fn link_file(&mut self, from: &Path, to: &Path) -> Result<()> {
        let report = &mut *self.report;
        match fs::hard_link(from, to) {
            Ok(()) => report.linked += 1,
            Err(error) if error.raw_os_error() == Some(nix::libc::EXDEV) => {
                report.bytes_copied += copy_file(from, to)?;
                report.cross_device_copies += 1;
            }
            // Deleted by the database between listing and linking
            // (only possible without a freeze): not part of this state.
            Err(error) if error.kind() == ErrorKind::NotFound => report.skipped += 1,
            Err(error) => {
                return Err(Error::io(
                    format!("linking {} to {}", to.display(), from.display()),
                    error,
                ))
            }
        }
        Ok(())
    }
}

/// The names and types of the entries of `directory`.
fn list_directory(directory: &Path) -> Result<Vec<(String, fs::FileType)>> {
    let listing = || format!("listing {}", directory.display());
    let mut names = Vec::new();
    for entry in fs::read_dir(directory).context(listing)? {
        let entry = entry.context(listing)?;
        let file_type = entry
            .file_type()
            .context(|| format!("inspecting {}", entry.path().display()))?;
        names.push((entry.file_name().to_string_lossy().into_owned(), file_type));
    }
    Ok(names)
}

fn copy_file(from: &Path, to: &Path) -> Result<u64> {
    fs::copy(from, to).context(|| format!("copying {} to {}", from.display(), to.display()))
}

/// Flushes copied files and directory entries, so the checkpoint survives a crash.
fn sync_tree(root: &Path) -> Result<()> {
    for entry in walkdir::WalkDir::new(root) {
        let entry = entry
            .map_err(|error| Error::io(format!("walking {}", root.display()), error.into()))?;
        let path = entry.path();
        fs::File::open(path)
            .and_then(|file| file.sync_all())
            .context(|| format!("syncing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_inside_the_source_is_refused() {
        let work = tempfile::tempdir().unwrap();
        let db = work.path().join("db");
        fs::create_dir(&db).unwrap();
        fs::write(db.join("000010.sst"), "sst").unwrap();
        for inside in [db.join("sub"), db.join("a/b"), db.join("sub/../other")] {
            let error = checkpoint(&db, &inside, &CheckpointOptions::default()).unwrap_err();
            assert_eq!(error.code(), crate::ErrorCode::InvalidArgument, "{error}");
            assert!(error.to_string().contains("inside the database directory"));
        }
        let beside = work.path().join("checkpoint");
        checkpoint(&db, &beside, &CheckpointOptions::default()).unwrap();
        assert!(beside.join("000010.sst").exists());
        assert_eq!(
            fs::read_dir(&db).unwrap().count(),
            1,
            "nothing written inside the source"
        );
    }
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn links_immutable_copies_mutable_skips_lock() {
        let work = tempfile::tempdir().unwrap();
        let db = work.path().join("db");
        fs::create_dir_all(db.join("archive")).unwrap();
        for (name, content) in [
            ("000010.sst", "sst"),
            ("000011.log", "old wal"),
            ("000014.log", "active wal"),
            ("MANIFEST-000012", "manifest"),
            ("CURRENT", "MANIFEST-000012\n"),
            ("IDENTITY", "uuid"),
            ("LOCK", ""),
            ("LOG", "info"),
            ("LOG.old.1", "info"),
            ("archive/000008.log", "archived"),
        ] {
            fs::write(db.join(name), content).unwrap();
        }
        let destination = work.path().join("ckpt");
        let marker = work.path().join("frozen");
        let options = CheckpointOptions {
            freeze_command: Some(format!("touch {}", marker.display())),
            thaw_command: Some(format!("rm {}", marker.display())),
            ..CheckpointOptions::default()
        };
        let report = checkpoint(&db, &destination, &options).unwrap();
        assert!(!marker.exists(), "thaw ran");
        let inode = |path: &Path| fs::metadata(path).unwrap().ino();
        assert_eq!(
            inode(&db.join("000010.sst")),
            inode(&destination.join("000010.sst"))
        );
        assert_eq!(
            inode(&db.join("000011.log")),
            inode(&destination.join("000011.log"))
        );
        assert_eq!(
            inode(&db.join("archive/000008.log")),
            inode(&destination.join("archive/000008.log"))
        );
        assert_ne!(
            inode(&db.join("000014.log")),
            inode(&destination.join("000014.log"))
        );
        assert_eq!(
            fs::read(destination.join("000014.log")).unwrap(),
            b"active wal"
        );
        assert!(!destination.join("LOCK").exists() && !destination.join("LOG").exists());
        assert!(!destination.join("LOG.old.1").exists());
        assert_eq!(report.linked, 3);
        assert_eq!(report.copied, 4);
        assert_eq!(report.skipped, 3);
        assert!(report.pause_seconds > 0.0);
        // An existing destination is refused.
        assert!(checkpoint(&db, &destination, &options).is_err());
    }

    #[test]
    fn failing_freeze_aborts_and_failing_copy_still_thaws() {
        let work = tempfile::tempdir().unwrap();
        let db = work.path().join("db");
        fs::create_dir(&db).unwrap();
        fs::write(db.join("CURRENT"), "x").unwrap();
        let marker = work.path().join("thawed");
        let lonely_freeze = CheckpointOptions {
            freeze_command: Some("true".into()),
            ..CheckpointOptions::default()
        };
        let error = checkpoint(&db, &work.path().join("a"), &lonely_freeze).unwrap_err();
        assert!(
            error.to_string().contains("needs a thaw command"),
            "{error}"
        );
        let options = CheckpointOptions {
            freeze_command: Some("exit 3".into()),
            thaw_command: Some(format!("touch {}", marker.display())),
            ..CheckpointOptions::default()
        };
        let error = checkpoint(&db, &work.path().join("a"), &options).unwrap_err();
        assert_eq!(error.code(), crate::ErrorCode::FreezeFailed, "{error}");
        assert!(marker.exists(), "a failed freeze is thawed");
        assert!(!work.path().join("a").exists());
        fs::remove_file(&marker).unwrap();
        // A destination whose parent is missing fails the copy; thaw still runs.
        let options = CheckpointOptions {
            thaw_command: Some(format!("touch {}", marker.display())),
            ..CheckpointOptions::default()
        };
        assert!(checkpoint(&db, &work.path().join("missing/parent"), &options).is_err());
        assert!(marker.exists());
    }

    #[test]
    fn an_interrupted_checkpoint_thaws_and_leaves_nothing() {
        let work = tempfile::tempdir().unwrap();
        let db = work.path().join("db");
        fs::create_dir(&db).unwrap();
        fs::write(db.join("000010.sst"), "sst").unwrap();
        let marker = work.path().join("thawed");
        let options = CheckpointOptions {
            freeze_command: Some("true".into()),
            thaw_command: Some(format!("touch {}", marker.display())),
            ..CheckpointOptions::default()
        };
        options.interrupt.trigger();
        let destination = work.path().join("ckpt");
        let error = checkpoint(&db, &destination, &options).unwrap_err();
        assert_eq!(error.code(), crate::ErrorCode::Interrupted, "{error}");
        assert!(!destination.exists());
    }

    /// fjall's layout: numbered segments and journals told apart only by
    /// their directories.
    #[test]
    fn directory_patterns_link_segments_and_sealed_journals_and_copy_the_active_one() {
        let work = tempfile::tempdir().unwrap();
        let db = work.path().join("keyspace");
        let segments = db.join("partitions/items/segments");
        fs::create_dir_all(&segments).unwrap();
        fs::create_dir(db.join("journals")).unwrap();
        for (path, content) in [
            (segments.join("3"), "segment 3"),
            (segments.join("7"), "segment 7"),
            (db.join("journals/8"), "sealed journal"),
            (db.join("journals/9"), "active journal"),
            (db.join("partitions/items/levels"), "levels"),
            (db.join("version"), "v2"),
        ] {
            fs::write(path, content).unwrap();
        }
        let options = CheckpointOptions {
            classes: FileClasses {
                immutable: vec!["segments/*".into()],
                wal: vec!["journals/*".into()],
                skip: Vec::new(),
            },
            ..CheckpointOptions::default()
        };
        let destination = work.path().join("ckpt");
        let mut resumed = 0;
        let report = checkpoint_then(&db, &destination, &options, || resumed += 1).unwrap();
        assert_eq!(resumed, 1, "resume runs once");
        let inode = |path: &Path| fs::metadata(path).unwrap().ino();
        let same = |relative: &str| inode(&db.join(relative)) == inode(&destination.join(relative));
        assert!(same("partitions/items/segments/3") && same("partitions/items/segments/7"));
        assert!(same("journals/8"), "a sealed journal is linked");
        assert!(!same("journals/9"), "the active journal is copied");
        assert!(!same("partitions/items/levels") && !same("version"));
        assert_eq!(
            fs::read_to_string(destination.join("journals/9")).unwrap(),
            "active journal"
        );
        assert_eq!((report.linked, report.copied), (3, 3));
    }
}
