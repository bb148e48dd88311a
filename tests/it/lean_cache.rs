//! The metadata cache answering what cannot have changed, over S3 (moto):
//! a warm command opens from the cached config and key file, a backup
//! chooses its parent from the cached snapshot listing and reuses the cached
//! pack listing, and `snapshots` makes one request. And what must not go
//! wrong: a repository re-created at the same location is never written
//! with the old one's key, a pack lost behind the cache is healed (at once
//! with `--verify-existing`, after the listing expires otherwise), and a
//! damaged cache is asked of the storage again (issue 11).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use lsmvault::backend::{Backend, ObjectKind};

use crate::common::s3::{lsmvault_s3_command, Moto};
use crate::common::{assert_same_tree, assert_success, seeded_bytes};
use crate::metadata_cache::{counts_of, Counts};

const PASSWORD: &str = "lean cache password";
/// The exit code of `repository_not_found`.
const NOT_FOUND: i32 = 10;

/// A repository on moto, a source and a cache directory.
struct Setup {
    _moto: Moto,
    repo: String,
    work: tempfile::TempDir,
    source: PathBuf,
    cache: PathBuf,
}

impl Setup {
    /// An encrypted repository (`password`) with one backup of a 2-file
    /// source; `None` when moto is absent.
    fn new(password: Option<&str>) -> Option<Setup> {
        let moto = Moto::start()?;
        let repo = moto.fresh_location();
        let work = tempfile::tempdir().unwrap();
        let source = work.path().join("source");
        fs::create_dir_all(&source).unwrap();
        fs::write(source.join("a.sst"), seeded_bytes(1, 300_000)).unwrap();
        fs::write(source.join("b.log"), seeded_bytes(2, 20_000)).unwrap();
        let cache = work.path().join("cache");
        let setup = Setup {
            _moto: moto,
            repo,
            work,
            source,
            cache,
        };
        match password {
            Some(_) => setup.ok(password, &["--no-cache", "init", "--kdf-target-ms", "20"]),
            None => setup.ok(None, &["--no-cache", "init", "--no-encryption"]),
        };
        Some(setup)
    }

    fn source(&self) -> &str {
        self.source.to_str().unwrap()
    }

    fn command(&self, password: Option<&str>, args: &[&str]) -> std::process::Command {
        let mut all = vec!["--cache-dir", self.cache.to_str().unwrap()];
        all.extend_from_slice(args);
        let mut command = lsmvault_s3_command(&self.repo, password, &all);
        command
            .env("LSMVAULT_REQUEST_STATS", "1")
            .env_remove("LSMVAULT_PACK_LISTING_MAX_AGE");
        command
    }

    fn output(&self, password: Option<&str>, args: &[&str]) -> Output {
        self.command(password, args).output().unwrap()
    }

    /// Runs with the cache; stdout and the request counts.
    fn run(&self, password: Option<&str>, args: &[&str]) -> (String, Counts) {
        let output = self.output(password, args);
        let stdout = assert_success(&output, &format!("lsmvault {args:?}"));
        (stdout, counts_of(&output))
    }

    fn ok(&self, password: Option<&str>, args: &[&str]) -> String {
        self.run(password, args).0
    }

    fn snapshot_count(&self, password: Option<&str>, cache: bool) -> usize {
        let args: &[&str] = if cache {
            &["--json", "snapshots"]
        } else {
            &["--no-cache", "--json", "snapshots"]
        };
        let listed: serde_json::Value = serde_json::from_str(&self.ok(password, args)).unwrap();
        listed.as_array().unwrap().len()
    }

    /// `verify --read-data` without the cache finds nothing wrong.
    fn assert_verifies(&self, password: Option<&str>) {
        let report: serde_json::Value = serde_json::from_str(
            &self.ok(password, &["--no-cache", "--json", "verify", "--read-data"]),
        )
        .unwrap();
        assert!(
            report["findings"].as_array().unwrap().is_empty(),
            "{report:#}"
        );
    }

    /// Restores `latest` without the cache and compares it with the source.
    fn assert_restores(&self, password: Option<&str>, name: &str) {
        let target = self.work.path().join(name);
        self.ok(
            password,
            &[
                "--no-cache",
                "restore",
                "latest",
                "--target",
                target.to_str().unwrap(),
            ],
        );
        assert_same_tree(&self.source, &target);
    }

    fn storage(&self) -> lsmvault::backend::S3Backend {
        Moto::backend(&self.repo)
    }

    /// The cache's state entries and the location map (what this work adds
    /// to the cache).
    fn state_entries(&self) -> Vec<PathBuf> {
        walkdir::WalkDir::new(&self.cache)
            .into_iter()
            .map(|entry| entry.unwrap().into_path())
            .filter(|path| {
                path.is_file()
                    && path
                        .components()
                        .any(|part| part.as_os_str() == "state" || part.as_os_str() == "locations")
            })
            .collect()
    }
}

fn flip_byte(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    fs::write(path, bytes).unwrap();
}

/// Deletes every object of the repository at the location, config last.
fn delete_everything(storage: &dyn Backend) {
    for kind in ObjectKind::ALL {
        if kind == ObjectKind::Config {
            continue;
        }
        for object in storage.list(kind).unwrap() {
            storage.delete(kind, &object.name).unwrap();
        }
    }
    storage.delete(ObjectKind::Config, "config").unwrap();
}

#[test]
fn warm_snapshots_makes_one_request_and_sees_another_clients_snapshot() {
    let Some(setup) = Setup::new(Some(PASSWORD)) else {
        return;
    };
    let password = Some(PASSWORD);
    setup.ok(password, &["backup", setup.source()]);
    setup.ok(password, &["snapshots"]);
    let (_, counts) = setup.run(password, &["snapshots"]);
    assert_eq!(counts.total(), 1, "{counts:?}");
    assert_eq!(counts.of("snapshots", "list"), 1, "{counts:?}");
    // Another client, without this cache, writes a snapshot.
    fs::write(setup.source.join("c.sst"), seeded_bytes(3, 10_000)).unwrap();
    setup.ok(password, &["--no-cache", "backup", setup.source()]);
    let (listing, counts) = setup.run(password, &["--json", "snapshots"]);
    let listed: serde_json::Value = serde_json::from_str(&listing).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed:#}");
    assert_eq!(counts.of("snapshots", "list"), 1, "{counts:?}");
    assert_eq!(counts.of("snapshots", "read"), 1, "{counts:?}");
    assert_eq!(counts.total(), 2, "{counts:?}");
}

#[test]
fn warm_unchanged_backup_asks_no_config_keys_packs_or_snapshots() {
    let Some(setup) = Setup::new(Some(PASSWORD)) else {
        return;
    };
    let password = Some(PASSWORD);
    setup.ok(password, &["backup", setup.source()]);
    setup.ok(password, &["backup", setup.source()]);
    let (_, counts) = setup.run(password, &["backup", setup.source()]);
    eprintln!("warm unchanged backup: {counts:?}");
    for (kind, method) in [
        ("config", "read"),
        ("keys", "list"),
        ("keys", "read"),
        ("data", "list"),
        ("snapshots", "list"),
        ("snapshots", "read"),
        ("index", "read"),
    ] {
        assert_eq!(counts.of(kind, method), 0, "{kind} {method}: {counts:?}");
    }
    assert_eq!(counts.of("snapshots", "write_if_absent"), 1, "{counts:?}");
    assert_eq!(setup.snapshot_count(password, false), 3);
    setup.assert_restores(password, "restored");
}

/// A plaintext repository's cached config proves nothing (no
/// authenticator), so every warm command reads the storage's once: one
/// request more than an encrypted repository's, and nothing else.
#[test]
fn a_warm_plaintext_repository_reads_only_its_config_more() {
    let Some(setup) = Setup::new(None) else {
        return;
    };
    setup.ok(None, &["backup", setup.source()]);
    setup.ok(None, &["backup", setup.source()]);
    let (_, counts) = setup.run(None, &["backup", setup.source()]);
    eprintln!("warm unchanged plaintext backup: {counts:?}");
    assert_eq!(counts.of("config", "read"), 1, "{counts:?}");
    assert_eq!(counts.total(), 6, "{counts:?}");
    let (_, counts) = setup.run(None, &["snapshots"]);
    assert_eq!(counts.of("config", "read"), 1, "{counts:?}");
    assert_eq!(counts.total(), 2, "{counts:?}");
}

/// Repository A is warm in the cache; every object of A is deleted and B
/// made at the same location with another password: B's password opens B
/// (A's cached key file does not), and nothing of B is written with A's key.
#[test]
fn a_repository_recreated_with_another_password_is_opened_from_the_storage() {
    let Some(setup) = Setup::new(Some(PASSWORD)) else {
        return;
    };
    setup.ok(Some(PASSWORD), &["backup", setup.source()]);
    setup.ok(Some(PASSWORD), &["snapshots"]);
    delete_everything(&setup.storage());
    let other = Some("the other repository's password");
    setup.ok(other, &["--no-cache", "init", "--kdf-target-ms", "20"]);
    let (_, counts) = setup.run(other, &["backup", setup.source()]);
    assert_eq!(counts.of("config", "read"), 1, "{counts:?}");
    assert_eq!(setup.snapshot_count(other, false), 1);
    setup.assert_restores(other, "restored-b");
    setup.assert_verifies(other);
    // A's password opens nothing there any more, warm cache or not.
    let refused = setup.output(Some(PASSWORD), &["snapshots"]);
    assert!(!refused.status.success());
    // And B is warm now.
    let (_, counts) = setup.run(other, &["snapshots"]);
    assert_eq!(counts.total(), 1, "{counts:?}");
}

/// The same with the same password: A's cached key file opens, so the warm
/// handle holds A's key; the index listing of B differs and B's config
/// differs from A's, so the cache is dropped before anything is written and
/// the command runs again from the storage.
#[test]
fn a_repository_recreated_with_the_same_password_is_never_written_with_the_old_key() {
    let Some(setup) = Setup::new(Some(PASSWORD)) else {
        return;
    };
    let password = Some(PASSWORD);
    setup.ok(password, &["backup", setup.source()]);
    setup.ok(password, &["backup", setup.source()]);
    delete_everything(&setup.storage());
    setup.ok(password, &["--no-cache", "init", "--kdf-target-ms", "20"]);
    let output = setup.output(password, &["backup", setup.source()]);
    assert_success(&output, "backup into B with A's warm cache");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("re-created"), "{stderr}");
    assert_eq!(setup.snapshot_count(password, false), 1);
    setup.assert_restores(password, "restored-b");
    setup.assert_verifies(password);
    // `snapshots` with a stale warm cache (B re-created again, one
    // snapshot): another repository's snapshot files look damaged under
    // the old key, so the cache is checked and dropped, never reported.
    setup.ok(password, &["snapshots"]);
    delete_everything(&setup.storage());
    setup.ok(password, &["--no-cache", "init", "--kdf-target-ms", "20"]);
    setup.ok(password, &["--no-cache", "backup", setup.source()]);
    let output = setup.output(password, &["--json", "snapshots"]);
    let stdout = assert_success(&output, "snapshots of C with B's warm cache");
    let listed: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{stdout}");
    setup.assert_verifies(password);
}

/// A plaintext repository re-created at the same location: its config (a
/// new id) differs, so the cached one is dropped.
#[test]
fn a_plaintext_repository_recreated_is_read_from_the_storage() {
    let Some(setup) = Setup::new(None) else {
        return;
    };
    setup.ok(None, &["backup", setup.source()]);
    setup.ok(None, &["backup", setup.source()]);
    delete_everything(&setup.storage());
    setup.ok(None, &["--no-cache", "init", "--no-encryption"]);
    setup.ok(None, &["backup", setup.source()]);
    assert_eq!(setup.snapshot_count(None, false), 1);
    setup.assert_restores(None, "restored");
    setup.assert_verifies(None);
}

/// Deletes every pack of the repository behind the cache's back.
fn delete_packs(setup: &Setup) -> usize {
    let storage = setup.storage();
    let packs = storage.list(ObjectKind::Pack).unwrap();
    for pack in &packs {
        storage.delete(ObjectKind::Pack, &pack.name).unwrap();
    }
    packs.len()
}

fn verify_fails(setup: &Setup, password: Option<&str>) -> bool {
    !setup
        .output(password, &["--no-cache", "verify"])
        .status
        .success()
}

/// Packs lost behind the cache: within the listing's age the next backup
/// does not see it (the documented trade); with the age at 0, or with
/// `--verify-existing`, the backup writes them again.
#[test]
fn packs_deleted_behind_the_cache_are_healed() {
    let Some(setup) = Setup::new(Some(PASSWORD)) else {
        return;
    };
    let password = Some(PASSWORD);
    setup.ok(password, &["backup", setup.source()]);
    setup.ok(password, &["backup", setup.source()]);
    assert!(delete_packs(&setup) > 0);
    // Default age: the cached listing stands, nothing is rewritten.
    let (_, counts) = setup.run(password, &["backup", setup.source()]);
    assert_eq!(counts.of("data", "list"), 0, "{counts:?}");
    assert!(verify_fails(&setup, password));
    // `--verify-existing` lists and heals at once (the lost packs' index
    // entries stay until a prune, as after any heal).
    let (_, counts) = setup.run(password, &["backup", "--verify-existing", setup.source()]);
    assert_eq!(counts.of("data", "list"), 1, "{counts:?}");
    setup.assert_restores(password, "healed-by-verify-existing");
    // Lost again; an age of 0 always lists.
    assert!(delete_packs(&setup) > 0);
    let output = setup
        .command(password, &["backup", setup.source()])
        .env("LSMVAULT_PACK_LISTING_MAX_AGE", "0")
        .output()
        .unwrap();
    assert_success(&output, "backup with LSMVAULT_PACK_LISTING_MAX_AGE=0");
    // (Twice: the index now holds blobs stored twice, and loading it
    // lists the packs to prefer the present copy.)
    let counts = counts_of(&output);
    assert!(counts.of("data", "list") >= 1, "{counts:?}");
    setup.assert_restores(password, "healed-by-age-0");
    // `--no-cache` heals too.
    assert!(delete_packs(&setup) > 0);
    setup.ok(password, &["--no-cache", "backup", setup.source()]);
    setup.assert_restores(password, "healed-without-cache");
    // Once pruned, nothing is missing, and the next warm backup (its pack
    // listing taken under an index that no longer exists) lists again.
    setup.ok(password, &["--no-cache", "prune", "--max-unused", "0"]);
    setup.assert_verifies(password);
    let (_, counts) = setup.run(password, &["backup", setup.source()]);
    assert_eq!(counts.of("data", "list"), 1, "{counts:?}");
}

/// Copies every object of `from` to `to`, as a bucket mirrored to another.
fn mirror_objects(from: &dyn Backend, to: &dyn Backend) {
    to.replace_config(&from.read(ObjectKind::Config, "config").unwrap())
        .unwrap();
    for kind in ObjectKind::ALL {
        if kind == ObjectKind::Config {
            continue;
        }
        for object in from.list(kind).unwrap() {
            let bytes = from.read(kind, &object.name).unwrap();
            to.write_if_absent(kind, &object.name, &bytes).unwrap();
        }
    }
}

/// Review finding F4 over S3: the repository mirrored to another bucket
/// (same id, same index) loses its packs there. A backup into the mirror,
/// with the cache that holds the original's young pack listing, writes
/// the blobs again: the listing it goes by is the mirror's own, and the
/// mirror's new snapshot restores. Warm again, both locations keep their
/// own listings.
#[test]
fn a_pack_missing_in_a_mirrored_bucket_is_written_again() {
    let Some(mut setup) = Setup::new(Some(PASSWORD)) else {
        return;
    };
    let password = Some(PASSWORD);
    setup.ok(password, &["backup", setup.source()]);
    setup.ok(password, &["backup", setup.source()]);
    let original = setup.repo.clone();
    let mirror = setup._moto.fresh_location();
    mirror_objects(&setup.storage(), &Moto::backend(&mirror));
    setup.repo = mirror;
    assert!(delete_packs(&setup) > 0);
    let (_, counts) = setup.run(password, &["backup", setup.source()]);
    assert_eq!(counts.of("data", "list"), 1, "{counts:?}");
    assert!(counts.of("data", "write_if_absent") >= 1, "{counts:?}");
    // (`verify` still names the lost pack: its index entries stay until a
    // prune, as after any heal.)
    setup.assert_restores(password, "restored-mirror");
    let (_, counts) = setup.run(password, &["backup", setup.source()]);
    assert_eq!(counts.of("data", "list"), 0, "{counts:?}");
    assert_eq!(counts.of("data", "write_if_absent"), 0, "{counts:?}");
    setup.repo = original;
    let (_, counts) = setup.run(password, &["backup", setup.source()]);
    assert_eq!(counts.of("data", "list"), 0, "{counts:?}");
    assert_eq!(counts.of("data", "write_if_absent"), 0, "{counts:?}");
    setup.assert_verifies(password);
}

#[test]
fn a_bad_pack_listing_max_age_is_refused() {
    let Some(setup) = Setup::new(None) else {
        return;
    };
    let output = setup
        .command(None, &["backup", setup.source()])
        .env("LSMVAULT_PACK_LISTING_MAX_AGE", "an hour")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("LSMVAULT_PACK_LISTING_MAX_AGE"), "{stderr}");
}

/// Each state entry (config, key file, listings, location map) damaged in
/// turn: the command asks the storage and succeeds.
#[test]
fn damaged_cache_state_falls_back_to_the_storage() {
    let Some(setup) = Setup::new(Some(PASSWORD)) else {
        return;
    };
    let password = Some(PASSWORD);
    setup.ok(password, &["backup", setup.source()]);
    setup.ok(password, &["backup", setup.source()]);
    let entries = setup.state_entries();
    let names: Vec<String> = entries
        .iter()
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "config",
        "key",
        "indexlisting",
        "snapshotlisting",
        "packlisting",
    ] {
        assert!(names.iter().any(|name| name == expected), "{names:?}");
    }
    let mut snapshots = 2;
    for (round, entry) in setup.state_entries().iter().enumerate() {
        if !entry.exists() {
            continue;
        }
        flip_byte(entry);
        fs::write(
            setup.source.join("changing.log"),
            seeded_bytes(10 + round as u64, 5_000),
        )
        .unwrap();
        let (_, counts) = setup.run(password, &["backup", setup.source()]);
        snapshots += 1;
        let name = entry.file_name().unwrap().to_string_lossy();
        if name == "config" || name == "key" || entry.parent().unwrap().ends_with("locations") {
            assert_eq!(counts.of("config", "read"), 1, "{name}: {counts:?}");
        }
        assert_eq!(setup.snapshot_count(password, true), snapshots);
        // Warm again afterwards.
        let (_, counts) = setup.run(password, &["snapshots"]);
        assert_eq!(counts.total(), 1, "after {name}: {counts:?}");
    }
    setup.assert_verifies(password);
    setup.assert_restores(password, "restored");
}

/// A wrong password with a warm cache is refused as without one.
#[test]
fn a_wrong_password_with_a_warm_cache_is_refused() {
    let Some(setup) = Setup::new(Some(PASSWORD)) else {
        return;
    };
    setup.ok(Some(PASSWORD), &["backup", setup.source()]);
    let refused = setup.output(Some("wrong"), &["snapshots"]);
    assert_eq!(refused.status.code(), Some(26), "{refused:?}");
    let refused = setup.output(Some("wrong"), &["backup", setup.source()]);
    assert!(!refused.status.success());
    assert_eq!(setup.snapshot_count(Some(PASSWORD), false), 1);
}

/// A repository deleted behind a warm cache is reported missing, not as an
/// empty repository, and nothing is written where it was.
#[test]
fn a_deleted_repository_with_a_warm_cache_is_not_found() {
    let Some(setup) = Setup::new(Some(PASSWORD)) else {
        return;
    };
    let password = Some(PASSWORD);
    setup.ok(password, &["backup", setup.source()]);
    setup.ok(password, &["snapshots"]);
    delete_everything(&setup.storage());
    for args in [&["snapshots"][..], &["backup", setup.source()][..]] {
        let output = setup.output(password, args);
        assert_eq!(
            output.status.code(),
            Some(NOT_FOUND),
            "{args:?}: {output:?}"
        );
    }
    let storage = setup.storage();
    for kind in ObjectKind::ALL {
        if kind != ObjectKind::Config {
            assert_eq!(storage.list(kind).unwrap(), Vec::new(), "{kind:?}");
        }
    }
}

/// `key passwd` through the cache: the old password no longer opens from
/// it (its key file is forgotten with the key file removed).
#[test]
fn an_old_password_does_not_open_from_the_cache_after_key_passwd() {
    let Some(setup) = Setup::new(Some(PASSWORD)) else {
        return;
    };
    setup.ok(Some(PASSWORD), &["backup", setup.source()]);
    setup.ok(Some(PASSWORD), &["snapshots"]);
    let new = "the new password";
    let output = setup
        .command(Some(PASSWORD), &["key", "passwd", "--kdf-target-ms", "20"])
        .env("LSMVAULT_NEW_PASSWORD", new)
        .output()
        .unwrap();
    assert_success(&output, "key passwd");
    let refused = setup.output(Some(PASSWORD), &["snapshots"]);
    assert_eq!(refused.status.code(), Some(26), "{refused:?}");
    assert_eq!(setup.snapshot_count(Some(new), true), 1);
    // Warm under the new password.
    let (_, counts) = setup.run(Some(new), &["snapshots"]);
    assert_eq!(counts.total(), 1, "{counts:?}");
}

/// Two warm backups of different sources at once through one cache
/// directory, then a third: every snapshot restores, the repository
/// verifies, and the cache's listings never hide a pack either one wrote.
#[test]
fn concurrent_warm_backups_sharing_one_cache_stay_consistent() {
    let Some(setup) = Setup::new(Some(PASSWORD)) else {
        return;
    };
    let password = Some(PASSWORD);
    setup.ok(password, &["backup", setup.source()]);
    setup.ok(password, &["snapshots"]);
    let sources: Vec<PathBuf> = (0..2)
        .map(|number| {
            let source = setup.work.path().join(format!("source-{number}"));
            fs::create_dir_all(&source).unwrap();
            fs::write(source.join("own.sst"), seeded_bytes(100 + number, 200_000)).unwrap();
            fs::write(source.join("shared.sst"), seeded_bytes(7, 100_000)).unwrap();
            source
        })
        .collect();
    let children: Vec<_> = sources
        .iter()
        .map(|source| {
            setup
                .command(password, &["backup", source.to_str().unwrap()])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        assert_success(&child.wait_with_output().unwrap(), "concurrent backup");
    }
    // Unchanged sources again, warm: nothing is missing from the packs
    // either listing held, so nothing is written but the snapshots.
    for source in &sources {
        let (_, counts) = setup.run(password, &["backup", source.to_str().unwrap()]);
        assert_eq!(counts.of("data", "write_if_absent"), 0, "{counts:?}");
    }
    setup.assert_verifies(password);
    for (number, source) in sources.iter().enumerate() {
        let target = setup.work.path().join(format!("restored-{number}"));
        setup.ok(
            password,
            &[
                "--no-cache",
                "restore",
                "latest",
                "--path",
                source.to_str().unwrap(),
                "--target",
                target.to_str().unwrap(),
            ],
        );
        assert_same_tree(source, &target);
    }
}
