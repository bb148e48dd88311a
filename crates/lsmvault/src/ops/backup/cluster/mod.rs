//! `cluster backup`: one consistent cut across every shard of a cluster on
//! this machine, each shard backed up as an ordinary snapshot, and the
//! cluster snapshot naming them written last (the commit point).
//!
//! Order of work, which is also the failure argument:
//! 1. check every shard (local, an existing directory) and choose each
//!    one's parent (its member snapshot in the newest cluster snapshot of
//!    this cluster) before anyone is paused;
//! 2. the freeze barrier (`barrier.rs`): all writers paused in parallel,
//!    hard-link checkpoints beside each shard taken only once ALL are
//!    paused, each shard thawed after its own; any failure thaws everyone
//!    and writes nothing to the repository;
//! 3. every checkpoint backed up in parallel into this repository (shards
//!    deduplicate against each other and their own earlier generations);
//! 4. only when every member snapshot is durable, the cluster snapshot.
//!
//! A shard failing in step 3 leaves no cluster snapshot; the members
//! already written stay as ordinary snapshots and the error names them.
//! The staging checkpoints (`.lsmvault-live-PID-NANOS` beside each shard,
//! like `backup --live`'s) are removed on every way out; one left by a
//! process killed outright is removed by the next run beside that shard.

mod barrier;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use serde::Serialize;

use super::live::{remove_leftovers, TemporaryCheckpoint, TEMPORARY_PREFIX};
use super::{BackupOptions, BackupOutcome};
use crate::error::{Error, Result};
use crate::format::cluster::{ClusterMember, ClusterSnapshot, PauseFigures};
use crate::format::topology::{PauseMethod, Shard, Topology};
use crate::id::Id;
use crate::interrupt::Interrupt;
use crate::lsm::checkpoint::{check_destination, CheckpointReport};
use crate::lsm::file_class::FileClasses;
use crate::lsm::pause::DEFAULT_COMMAND_TIMEOUT;
use crate::lsm::writer_pause::WriterPause;
use crate::progress::NoProgress;
use crate::repo::Repository;
use crate::time::Timestamp;
use barrier::{take_cut, ShardCut, Timeouts};

/// The default of [`ClusterBackupOptions::freeze_timeout`].
pub const DEFAULT_FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// Options for [`Repository::cluster_backup`].
#[derive(Debug, Clone)]
pub struct ClusterBackupOptions {
    /// The name of this cut (recorded in the cluster snapshot, and a tag of
    /// every member snapshot).
    pub tag: Option<String>,
    /// How long each shard's freeze may take; past it the freeze has failed
    /// and everyone is thawed.
    pub freeze_timeout: Duration,
    /// How long each thaw command may take.
    pub thaw_timeout: Duration,
    /// For every member backup: extra tags, host, compression, the
    /// interrupt (which also stops the freeze barrier). The source label,
    /// parent and time are set per shard.
    pub backup: BackupOptions,
}

impl Default for ClusterBackupOptions {
    fn default() -> Self {
        ClusterBackupOptions {
            tag: None,
            freeze_timeout: DEFAULT_FREEZE_TIMEOUT,
            thaw_timeout: DEFAULT_COMMAND_TIMEOUT,
            backup: BackupOptions::default(),
        }
    }
}

/// One shard's part of a cluster backup.
#[derive(Debug, Clone, Serialize)]
pub struct ShardBackup {
    /// The shard's name.
    pub shard: String,
    /// Its member snapshot.
    pub snapshot: Id,
    /// The member snapshot's parent, if any.
    pub parent: Option<Id>,
    /// Files new / changed / unmodified, bytes read and added.
    pub stats: crate::format::snapshot::BackupStats,
    /// The database's last sequence number at the cut, when it has one.
    pub sequence: Option<u64>,
    /// How long its writes were paused.
    pub pause: PauseFigures,
    /// What its checkpoint linked and copied.
    pub checkpoint: CheckpointReport,
}

/// The result of a cluster backup.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterBackupOutcome {
    /// The cluster snapshot's id.
    pub id: Id,
    /// The cluster snapshot as written.
    pub cluster: ClusterSnapshot,
    /// Per shard, in topology order.
    pub shards: Vec<ShardBackup>,
    /// Staging checkpoints of earlier runs that were killed, removed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub leftovers_removed: Vec<PathBuf>,
}

/// A shard ready to be cut: its canonical directory and staging path.
struct LocalShard<'a> {
    shard: &'a Shard,
    source: PathBuf,
    staging: TemporaryCheckpoint,
    parent: Option<Id>,
}

/// The tags of a member snapshot: the cluster, the shard, the cut's tag, the caller's.
fn member_tags(topology: &Topology, shard: &Shard, options: &ClusterBackupOptions) -> Vec<String> {
    let mut tags = vec![
        format!("cluster:{}", topology.name),
        format!("shard:{}", shard.name),
    ];
    tags.extend(options.tag.iter().cloned());
    tags.extend(options.backup.tags.iter().cloned());
    tags
}

fn shard_error(shard: &str, during: &str, error: Error) -> Error {
    Error::ClusterShard {
        shard: shard.to_string(),
        during: during.to_string(),
        source: Box::new(error),
        written: Vec::new(),
    }
}

/// Refuses what this build cannot back up, before anyone is paused: a
/// shard on another host (remote shards come next), a directory that is
/// missing.
fn check_shard(shard: &Shard) -> Result<PathBuf> {
    if let Some(host) = &shard.host {
        return Err(Error::InvalidArgument(format!(
            "shard {:?} is on host {host}: this release backs up shards on this machine only (remote shards, reached with `remote_command`, come next); run the cluster backup where the shards are, or back that shard up there with `backup --live`",
            shard.name
        )));
    }
    fs::canonicalize(&shard.path)
        .ok()
        .filter(|path| path.is_dir())
        .ok_or_else(|| {
            shard_error(
                &shard.name,
                "checking its directory (nobody was paused)",
                Error::SourceNotFound {
                    path: PathBuf::from(&shard.path),
                },
            )
        })
}

/// An exclusive `flock` of the shard's directory, held for the whole
/// cluster backup: a second cluster backup of the same shard would thaw
/// this one's writers in the middle of its cut (SIGCONT, a pause file
/// removed), so it is refused before it pauses anyone.
fn lock_shard(shard: &Shard, directory: &Path) -> Result<Flock<fs::File>> {
    let context = || {
        format!(
            "locking {} (a cluster backup holds it while it pauses the shard)",
            directory.display()
        )
    };
    let file = fs::File::open(directory).map_err(|error| Error::io(context(), error))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        let reason = if errno == nix::errno::Errno::EWOULDBLOCK {
            "another cluster backup is pausing this shard now: wait for it to finish".to_string()
        } else {
            errno.to_string()
        };
        shard_error(
            &shard.name,
            "locking it (nobody was paused)",
            Error::io(context(), std::io::Error::other(reason)),
        )
    })
}

fn writer_pause(shard: &Shard) -> WriterPause {
    match shard.pause() {
        PauseMethod::None => WriterPause::None,
        PauseMethod::Commands { freeze, thaw } => WriterPause::Commands {
            freeze: freeze.to_string(),
            thaw: thaw.to_string(),
        },
        PauseMethod::PidFile(path) => WriterPause::PidFile(PathBuf::from(path)),
        PauseMethod::PauseFile(path) => WriterPause::PauseFile(PathBuf::from(path)),
    }
}

/// The checkpoint's file classes: the defaults, with the shard's pause
/// file left out when it lies inside the shard's directory (it exists
/// while the checkpoint is taken; a restored database must not come with
/// its writer paused).
fn classes_for(source: &Path, pause: &WriterPause) -> FileClasses {
    let mut classes = FileClasses::default();
    let WriterPause::PauseFile(file) = pause else {
        return classes;
    };
    let directory = file
        .parent()
        .and_then(|parent| fs::canonicalize(parent).ok());
    let name = file.file_name().and_then(|name| name.to_str());
    if let (Some(directory), Some(name)) = (directory, name) {
        if directory == source {
            classes.skip.push(name.to_string());
        } else if directory.starts_with(source) {
            if let Some(parent) = directory.file_name().and_then(|parent| parent.to_str()) {
                classes.skip.push(format!("{parent}/{name}"));
            }
        }
    }
    classes
}

impl Repository {
    /// Backs up every shard of `topology` at one consistent cut (see the
    /// module documentation) and writes the cluster snapshot naming them.
    pub fn cluster_backup(
        &self,
        topology: &Topology,
        options: &ClusterBackupOptions,
    ) -> Result<ClusterBackupOutcome> {
        topology.validate("the topology")?;
        let sources: Vec<PathBuf> = topology
            .shards
            .iter()
            .map(check_shard)
            .collect::<Result<_>>()?;
        let _locks = topology
            .shards
            .iter()
            .zip(&sources)
            .map(|(shard, source)| lock_shard(shard, source))
            .collect::<Result<Vec<_>>>()?;
        let parents = self.previous_members(topology)?;
        let mut leftovers_removed = Vec::new();
        let parent_directories: BTreeSet<&Path> = sources
            .iter()
            .filter_map(|source| source.parent())
            .collect();
        for directory in parent_directories {
            leftovers_removed.extend(remove_leftovers(directory, &sources));
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let mut shards = Vec::new();
        for (index, (shard, source)) in topology.shards.iter().zip(sources).enumerate() {
            let name = format!(
                "{TEMPORARY_PREFIX}{}-{}",
                std::process::id(),
                nanos + index as u128
            );
            let staging = source.parent().unwrap_or(Path::new("/")).join(name);
            check_destination(&source, &staging, true).map_err(|error| {
                shard_error(&shard.name, "choosing its staging directory", error)
            })?;
            shards.push(LocalShard {
                shard,
                staging: TemporaryCheckpoint {
                    path: staging,
                    removed: false,
                },
                parent: parents.get(index).copied().flatten(),
                source,
            });
        }
        let interrupt = &options.backup.interrupt;
        interrupt.check("starting the cluster backup")?;
        let cuts: Vec<ShardCut> = shards
            .iter()
            .map(|local| {
                let pause = writer_pause(local.shard);
                ShardCut {
                    name: local.shard.name.clone(),
                    source: local.source.clone(),
                    staging: local.staging.path.clone(),
                    classes: classes_for(&local.source, &pause),
                    pause,
                }
            })
            .collect();
        let timeouts = Timeouts {
            freeze: options.freeze_timeout,
            thaw: options.thaw_timeout,
        };
        let cut = take_cut(&cuts, timeouts, interrupt)?;
        let time = Timestamp::from(cut.time);
        let outcomes = self.ingest(topology, &shards, options, cut.time);
        // Removed whatever happened; a removal failure only matters on success.
        let removed: Vec<Result<()>> = shards
            .into_iter()
            .map(|local| local.staging.remove())
            .collect();
        let outcomes = settle(topology, outcomes, interrupt)?;
        removed.into_iter().collect::<Result<Vec<()>>>()?;
        let members = topology
            .shards
            .iter()
            .zip(&outcomes)
            .zip(&cut.shards)
            .map(|((shard, outcome), (_, figures))| ClusterMember {
                shard: shard.name.clone(),
                group: shard.group.clone(),
                role: shard.role,
                snapshot: Some(outcome.id),
                sequence: sequence_of(outcome),
                pause: *figures,
            })
            .collect();
        let mut cluster = ClusterSnapshot::new(topology.clone(), time, members);
        cluster.tag = options.tag.clone();
        cluster.pause_seconds = cut.span_seconds;
        let id = self.write_cluster_snapshot(&cluster)?;
        let shards = topology
            .shards
            .iter()
            .zip(outcomes)
            .zip(cut.shards)
            .map(|((shard, outcome), (checkpoint, pause))| ShardBackup {
                shard: shard.name.clone(),
                snapshot: outcome.id,
                parent: outcome.snapshot.parent,
                sequence: sequence_of(&outcome),
                stats: outcome.snapshot.stats,
                pause,
                checkpoint,
            })
            .collect();
        Ok(ClusterBackupOutcome {
            id,
            cluster,
            shards,
            leftovers_removed,
        })
    }

    /// Per shard (topology order), its member snapshot in the newest
    /// cluster snapshot of this cluster that has one still present: the
    /// parent of its next backup (incremental, whatever its siblings are).
    fn previous_members(&self, topology: &Topology) -> Result<Vec<Option<Id>>> {
        let (entries, _damaged) = self.cluster_snapshots_checked()?;
        let present: BTreeSet<Id> = self
            .snapshots_for_parent()?
            .0
            .iter()
            .map(|entry| entry.id)
            .collect();
        Ok(topology
            .shards
            .iter()
            .map(|shard| {
                entries
                    .iter()
                    .rev()
                    .filter(|entry| entry.snapshot.cluster == topology.name)
                    .flat_map(|entry| &entry.snapshot.members)
                    .filter(|member| member.shard == shard.name)
                    .filter_map(|member| member.snapshot)
                    .find(|id| present.contains(id))
            })
            .collect())
    }

    /// Backs every staged checkpoint up in parallel; the first failure
    /// stops the others (their snapshots, if written, stay).
    fn ingest(
        &self,
        topology: &Topology,
        shards: &[LocalShard],
        options: &ClusterBackupOptions,
        time: std::time::SystemTime,
    ) -> Vec<Result<BackupOutcome>> {
        let stop = Interrupt::new();
        // Interrupted already (during the last thaw): no member starts at all.
        if options.backup.interrupt.is_triggered() {
            stop.trigger();
        }
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            // The caller's interrupt reaches the member backups through `stop`.
            scope.spawn(|| {
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    if options.backup.interrupt.is_triggered() {
                        stop.trigger();
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
            let handles: Vec<_> = shards
                .iter()
                .map(|local| {
                    let backup = BackupOptions {
                        tags: member_tags(topology, local.shard, options),
                        source_label: Some(local.source.clone()),
                        parent: local.parent.map(|id| id.to_hex()),
                        time: Some(time),
                        interrupt: stop.clone(),
                        ..options.backup.clone()
                    };
                    let stop = &stop;
                    scope.spawn(move || {
                        let outcome = self
                            .backup(&local.staging.path, &backup, &NoProgress)
                            .and_then(refuse_incomplete);
                        if outcome.is_err() {
                            stop.trigger();
                        }
                        outcome
                    })
                })
                .collect();
            let outcomes = handles
                .into_iter()
                .map(|handle| {
                    handle.join().unwrap_or_else(|_| {
                        Err(Error::InvalidArgument("a shard's backup panicked".into()))
                    })
                })
                .collect();
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            outcomes
        })
    }
}

/// A member that lacks files is no part of a consistent cut: its
/// snapshot stays (incomplete, as `backup` keeps it), the cluster fails.
fn refuse_incomplete(outcome: BackupOutcome) -> Result<BackupOutcome> {
    if !outcome.snapshot.incomplete {
        return Ok(outcome);
    }
    Err(Error::IncompleteSnapshot {
        snapshot: outcome.id.to_hex()[..8].to_string(),
        first: outcome
            .snapshot
            .warnings
            .first()
            .cloned()
            .unwrap_or_default(),
    })
}

fn sequence_of(outcome: &BackupOutcome) -> Option<u64> {
    outcome
        .snapshot
        .database
        .as_ref()
        .and_then(|state| state.last_sequence)
}

/// Every shard's outcome when all succeeded (and no interrupt came before
/// the commit), else the failure naming the shard and the members written.
fn settle(
    topology: &Topology,
    outcomes: Vec<Result<BackupOutcome>>,
    interrupt: &Interrupt,
) -> Result<Vec<BackupOutcome>> {
    let written: Vec<String> = topology
        .shards
        .iter()
        .zip(&outcomes)
        .filter_map(|(shard, outcome)| {
            let id = outcome.as_ref().ok()?.id.to_hex();
            Some(format!("{} ({})", &id[..8], shard.name))
        })
        .collect();
    let mut failures: Vec<(&Shard, Error)> = Vec::new();
    let mut succeeded = Vec::new();
    for (shard, outcome) in topology.shards.iter().zip(outcomes) {
        match outcome {
            Ok(outcome) => succeeded.push(outcome),
            Err(error) => failures.push((shard, error)),
        }
    }
    // A shard stopped because another failed says only "interrupted".
    failures.sort_by_key(|(_, error)| matches!(error, Error::Interrupted { .. }));
    let left = if written.is_empty() {
        String::new()
    } else {
        format!(
            "; member snapshot(s) {} were written and stay as ordinary snapshots (`forget` removes them)",
            written.join(", ")
        )
    };
    match failures.into_iter().next() {
        Some((_, Error::Interrupted { .. })) => Err(Error::Interrupted {
            during: format!("backing up the shards; no cluster snapshot was written{left}"),
        }),
        Some((shard, error)) => Err(Error::ClusterShard {
            shard: shard.name.clone(),
            during: "backing it up".to_string(),
            source: Box::new(error),
            written,
        }),
        None if interrupt.is_triggered() => Err(Error::Interrupted {
            during: format!("about to write the cluster snapshot; none was written{left}"),
        }),
        None => Ok(succeeded),
    }
}
