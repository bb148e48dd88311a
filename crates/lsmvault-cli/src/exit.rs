//! How a failure reaches the user: the exit code (the error's stable
//! [`ErrorCode`]), the `error:` and `hint:` lines on stderr, and with `--json`
//! an error object on stdout.
//!
//! The hints live here, not in the library, because they name this program's
//! flags, environment variables and subcommands.

use std::process::ExitCode;

use lsmvault::{Error, ErrorCode};

/// The hint of a storage or I/O failure of no more specific kind. Also the
/// last arm of every family function below, which keeps their matches
/// total: `hint` routes each variant only to the family that names it, so
/// that arm is reached by the storage families alone.
const GENERIC: &str = "check the path, permissions and free space";

/// One line telling the user what to try next.
///
/// Routes each variant to the function of its family; the match is total, so
/// a new variant cannot be added without choosing its family (and hint).
pub fn hint(error: &Error) -> &'static str {
    match error {
        Error::Backend(failure) => backend_hint(failure, error.code()),
        Error::Io { .. } => io_hint(error.code()),
        Error::ConditionalWritesUnsupported { .. } => {
            "use a server that honours `If-None-Match: *` on PUT (AWS S3, MinIO, R2…); see docs/maintenance.md, \"Object storage\""
        }
        Error::RepositoryLocked { .. } | Error::LockLost { .. } | Error::LockExpired { .. } => {
            lock_hint(error)
        }
        Error::RepositoryNotFound { .. }
        | Error::RepositoryExists { .. }
        | Error::UnsupportedVersion { .. }
        | Error::SnapshotNotFound { .. }
        | Error::AmbiguousPrefix { .. }
        | Error::AmbiguousObject { .. }
        | Error::PathNotFound { .. }
        | Error::ObjectNotFound { .. } => lookup_hint(error),
        Error::ChecksumMismatch { .. }
        | Error::CorruptObject { .. }
        | Error::DamagedSnapshot { .. }
        | Error::UnsafePath { .. }
        | Error::VerifyFailed { .. } => damage_hint(error),
        Error::PasswordRequired { .. }
        | Error::WrongPassword { .. }
        | Error::PasswordCommandFailed { .. }
        | Error::AuthenticationFailed { .. }
        | Error::ConfigNotAuthentic { .. }
        | Error::MigrationRequired { .. } => key_hint(error),
        Error::DestinationExists { .. }
        | Error::CrossFilesystemCheckpoint { .. }
        | Error::FreezeFailed { .. }
        | Error::ThawFailed { .. } => checkpoint_hint(error),
        Error::CrossFilesystemHold { .. }
        | Error::WalHoldInUse { .. }
        | Error::WalGap { .. }
        | Error::PointInTimeUnavailable { .. } => wal_hint(error),
        Error::TargetNotEmpty { .. }
        | Error::SourceNotFound { .. }
        | Error::InvalidArgument(_)
        | Error::InvalidTopology { .. }
        | Error::PolicyRemovesAll { .. }
        | Error::Interrupted { .. } => input_hint(error),
        // The first failure decides the exit code, so it decides the hint too.
        Error::RestoreIncomplete { first, .. } => hint(first),
        Error::ClusterShard { .. } | Error::IncompleteSnapshot { .. } => {
            cluster_hint(error)
        }
        // Another thread's failure, repeated: its code says which family.
        Error::Repeated { code, .. } => match code {
            ErrorCode::StorageUnavailable => STORAGE_UNAVAILABLE,
            ErrorCode::StorageDenied => STORAGE_DENIED,
            other => io_hint(*other),
        },
    }
}

/// The storage (local file system or object store) under the repository
/// failed; `code` is the error's classified code (ENOSPC, EROFS, ...).
const STORAGE_UNAVAILABLE: &str = "the storage did not answer, or failed, even after retries: check that the server runs and the location's endpoint is right, or try again later (LSMVAULT_S3_RETRIES sets the retries); nothing half-written is visible";
const STORAGE_DENIED: &str = "the storage refused access: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), the bucket's policy, and that the bucket exists (lsmvault never creates buckets)";

fn backend_hint(failure: &lsmvault::backend::Error, code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::NoSpace => {
            "the repository's file system is full (ENOSPC): free space (grow the file system, or `lsmvault forget` then `lsmvault prune --max-unused 100`, which deletes unused packs without repacking) and run the command again; earlier snapshots are intact (restore and verify still work, without a lock), and what this run stored is reused or removed by the next prune"
        }
        ErrorCode::ReadOnlyFilesystem => {
            "the repository is on a read-only file system (EROFS): `snapshots`, `ls`, `restore` and `verify` work there (without a lock); commands that write need it mounted read-write"
        }
        _ if failure.is_transient() => {
            STORAGE_UNAVAILABLE
        }
        _ if failure.is_denied() => {
            STORAGE_DENIED
        }
        ErrorCode::CorruptObject => VERIFY_READ_DATA,
        _ => GENERIC,
    }
}

/// A path outside the repository (source, target, checkpoint) failed.
fn io_hint(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::NoSpace => {
            "the file system of that path is full (ENOSPC): free space (for the temporary files of a backup to object storage, point TMPDIR at a file system with room) and run the command again (`restore --delta` keeps the files already restored)"
        }
        ErrorCode::ReadOnlyFilesystem => {
            "that path is on a read-only file system (EROFS): choose another, or mount it read-write"
        }
        _ => GENERIC,
    }
}

/// Another command holds the repository, or this one lost its lock.
fn lock_hint(error: &Error) -> &'static str {
    match error {
        Error::RepositoryLocked { .. } => {
            "wait for that command to finish (or pass --retry-lock 10m); if it no longer runs, `lsmvault unlock` removes stale locks"
        }
        Error::LockLost { .. } => {
            "the backup paused past the lock staleness window or a prune ran meanwhile; run the backup again (it reuses what is still stored)"
        }
        Error::LockExpired { .. } => {
            "the command paused (or could not refresh its lock) past the lock staleness margin; run it again (nothing it left behind is lost: the next prune collects it)"
        }
        _ => GENERIC,
    }
}

/// What the user named (repository, snapshot, object, path) is not there, not
/// unique, or of a format this release does not know.
fn lookup_hint(error: &Error) -> &'static str {
    match error {
        Error::RepositoryNotFound { .. } => {
            "check --repo / LSMVAULT_REPOSITORY, or create one with `lsmvault init`"
        }
        Error::RepositoryExists { .. } => "use the existing repository, or choose another location",
        Error::UnsupportedVersion { .. } => {
            "upgrade lsmvault to a release that knows this format version"
        }
        Error::SnapshotNotFound { .. } => {
            "list snapshots with `lsmvault snapshots`; use an id, a unique prefix, `latest` or `latest:TAG`"
        }
        Error::AmbiguousPrefix { .. } => "give more characters of the snapshot id",
        Error::AmbiguousObject { .. } => "give more characters of the id",
        Error::PathNotFound { .. } => {
            "`lsmvault ls SNAPSHOT DIR` lists what a directory of the snapshot holds; `lsmvault find PATTERN` finds a file in every snapshot"
        }
        Error::ObjectNotFound { .. } => {
            "ids are hex: `lsmvault snapshots`, `lsmvault ls`, `lsmvault cat index ID` and `lsmvault stats` show those that exist"
        }
        _ => GENERIC,
    }
}

/// The hint of a damaged object: where to see all the damage.
const VERIFY_READ_DATA: &str =
    "run `lsmvault verify --read-data` to see every damaged object and the snapshots it affects";

/// The repository's content is damaged or hostile.
fn damage_hint(error: &Error) -> &'static str {
    match error {
        Error::ChecksumMismatch { .. } | Error::CorruptObject { .. } => VERIFY_READ_DATA,
        Error::DamagedSnapshot {
            code: ErrorCode::UnsupportedVersion,
            ..
        } => {
            "the snapshot was written by a newer lsmvault: upgrade to read it (prune refuses to delete data until then)"
        }
        Error::DamagedSnapshot { .. } => {
            "`lsmvault forget ID` removes the damaged snapshot (prune refuses to delete data while one is unreadable); `lsmvault snapshots` lists the damaged ones"
        }
        Error::UnsafePath { .. } => {
            "the snapshot was tampered with or written by a faulty tool; nothing was written outside the target"
        }
        Error::VerifyFailed { .. } => {
            "the findings above name each damaged object and the snapshots and files it affects"
        }
        _ => GENERIC,
    }
}

/// Passwords, keys and the authenticity of the repository's objects.
fn key_hint(error: &Error) -> &'static str {
    match error {
        Error::PasswordRequired { .. } => {
            "set LSMVAULT_PASSWORD, LSMVAULT_PASSWORD_FILE or LSMVAULT_PASSWORD_COMMAND, pass --password-file or --password-command, or run on a terminal to be asked (the source of `copy --from` has its own: --from-password-file, --from-password-command, LSMVAULT_FROM_PASSWORD); `init --no-encryption` creates a plaintext repository"
        }
        Error::WrongPassword { .. } => {
            "check the password (and --password-file / --password-command / LSMVAULT_PASSWORD, which take precedence over the terminal; for the source of `copy --from`: --from-password-file / --from-password-command / LSMVAULT_FROM_PASSWORD); each key of the repository has its own password"
        }
        Error::PasswordCommandFailed { .. } => {
            "run the password command by hand: it must exit 0 and print the password on its first line within its timeout (30s unless LSMVAULT_PASSWORD_COMMAND_TIMEOUT says otherwise); or use --password-file"
        }
        Error::AuthenticationFailed { .. } => {
            "the object was modified or damaged; run `lsmvault verify --read-data` to see what it affects"
        }
        Error::ConfigNotAuthentic { .. } => {
            "the repository's `config` was edited or replaced: put back a copy you trust (a backup of the repository, or the config of this repository before the edit); nothing was written"
        }
        Error::MigrationRequired { .. } => {
            "run `lsmvault migrate` (with the password) to bind the config to the master key; it prints what it binds"
        }
        _ => GENERIC,
    }
}

/// Taking a checkpoint of a live database (destination, freeze and thaw).
fn checkpoint_hint(error: &Error) -> &'static str {
    match error {
        Error::DestinationExists { .. } => {
            "name a directory that does not exist yet: checkpoint creates it (on the database's file system, so that files are linked, not copied)"
        }
        Error::CrossFilesystemCheckpoint { .. } => {
            "put the destination on the same filesystem, or pass --allow-copy to copy while frozen"
        }
        Error::FreezeFailed { .. } => {
            "check the freeze command by hand; the thaw command was run, so the writer is not left paused (--freeze-timeout sets how long it may take)"
        }
        Error::ThawFailed { .. } => {
            "resume the writer NOW with the thaw command named above, by hand, and check that it runs"
        }
        _ => GENERIC,
    }
}

/// WAL archiving and point-in-time restore.
fn wal_hint(error: &Error) -> &'static str {
    match error {
        Error::CrossFilesystemHold { .. } => {
            "pass a --hold-dir on the database's file system (the default, DBDIR/.lsmvault-wal-hold, is)"
        }
        Error::WalHoldInUse { .. } => {
            "stop the running watcher first, or give this one a holding directory of its own with --hold-dir DIR (on the database's file system)"
        }
        Error::WalGap { .. } => {
            "the database deleted a WAL file before it was archived: those writes cannot be restored from the archive (take a new backup to start a new window); docs/pitr.md lists the RocksDB options that prevent this (WAL_ttl_seconds / WAL_size_limit_MB)"
        }
        Error::PointInTimeUnavailable { .. } => {
            "`lsmvault wal ls` shows the archived timeline, its recoverable windows and its gaps"
        }
        _ => GENERIC,
    }
}

/// What the command was given (arguments, source, target) or told (Ctrl-C).
fn input_hint(error: &Error) -> &'static str {
    match error {
        Error::TargetNotEmpty { .. } => {
            "restore into a new or empty directory, or pass --delta to keep matching files"
        }
        Error::SourceNotFound { .. } => "pass the directory of a database checkpoint",
        Error::InvalidArgument(_) => "see `lsmvault help` for the accepted values",
        Error::InvalidTopology { .. } => {
            "fix each problem named (docs/cluster.md describes the file); `lsmvault cluster topology --check FILE` checks it again"
        }
        Error::PolicyRemovesAll { .. } => {
            "add a keep rule, or pass --allow-remove-all if removing every snapshot is intended"
        }
        Error::Interrupted { .. } => {
            "nothing was committed and nothing was left behind; run the command again"
        }
        _ => GENERIC,
    }
}

/// A cluster backup's shard failed: its failure's hint, except where the
/// topology is what to change.
fn cluster_hint(error: &Error) -> &'static str {
    match error {
        Error::ClusterShard { source, .. } => match source.as_ref() {
            Error::SourceNotFound { .. } => {
                "fix the shard's `path` in the topology file (an existing database directory on this machine); nobody was paused"
            }
            Error::IncompleteSnapshot { .. } => cluster_hint(source),
            other => hint(other),
        },
        Error::IncompleteSnapshot { .. } => {
            "make every file of the shard readable by this user and run the cluster backup again; the incomplete member snapshot is kept as an ordinary snapshot"
        }
        _ => GENERIC,
    }
}

/// The process exit code of an error code (its numeric value, which never changes).
pub fn exit_code(code: ErrorCode) -> ExitCode {
    // Every code is below 256 (ErrorCode is `repr(u8)`), so nothing is cut off.
    ExitCode::from(code.exit_code() as u8)
}

/// Prints the `error:` and `hint:` lines on stderr.
pub fn print_error(error: &Error) {
    eprintln!("error: {error}");
    eprintln!("hint: {}", hint(error));
}

/// Reports a failed command (with `json`, also as an error object on stdout)
/// and returns its exit code.
pub fn report_failure(error: &Error, json: bool) -> ExitCode {
    let code = error.code();
    if json {
        let report = serde_json::json!({
            "error": { "code": code.name(), "exit_code": code.exit_code(),
                       "message": error.to_string(), "hint": hint(error) }
        });
        outln!("{report}");
    }
    print_error(error);
    exit_code(code)
}
