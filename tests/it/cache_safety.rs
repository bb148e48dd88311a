//! What a metadata cache must never make a command believe (review of issue
//! 11, findings F4 and F5): a copy of a repository at another location
//! holds what it holds, not what the original holds; a cache tampered with
//! cannot make an encrypted repository take plaintext; and after `key
//! passwd` the cache remembers the new key file, not the removed one.
//! Local repositories with `--cache-dir`, requests counted
//! (`LSMVAULT_REQUEST_STATS=1`); the same over S3 is in `lean_cache.rs`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{
    assert_same_tree, assert_success, copy_tree, lsmvault_command, seeded_bytes, snapshot_ids,
};
use crate::metadata_cache::{counts_of, Counts};

const PASSWORD: &str = "cache safety password";
/// The exit code of a password that opens no key file.
const WRONG_PASSWORD: i32 = 26;

/// A work directory with a source tree and a cache directory; repositories
/// are made in it by the tests.
struct Setup {
    work: tempfile::TempDir,
    source: PathBuf,
    cache: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let work = tempfile::tempdir().unwrap();
        let source = work.path().join("source");
        fs::create_dir_all(&source).unwrap();
        fs::write(source.join("a.sst"), seeded_bytes(1, 300_000)).unwrap();
        fs::write(source.join("b.log"), seeded_bytes(2, 20_000)).unwrap();
        let cache = work.path().join("cache");
        Setup {
            work,
            source,
            cache,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// `lsmvault --repo REPO --cache-dir CACHE ARGS...`, requests counted.
    fn output(&self, repo: &Path, password: Option<&str>, args: &[&str]) -> Output {
        let mut all = vec!["--cache-dir", self.cache.to_str().unwrap()];
        all.extend_from_slice(args);
        lsmvault_command(repo, password, &all)
            .env("LSMVAULT_REQUEST_STATS", "1")
            .env_remove("LSMVAULT_CACHE_DIR")
            .env_remove("LSMVAULT_PACK_LISTING_MAX_AGE")
            .output()
            .unwrap()
    }

    fn run(&self, repo: &Path, password: Option<&str>, args: &[&str]) -> (String, Counts) {
        let output = self.output(repo, password, args);
        let stdout = assert_success(&output, &format!("lsmvault {args:?}"));
        (stdout, counts_of(&output))
    }

    fn backup(&self, repo: &Path, password: Option<&str>) -> Counts {
        self.run(repo, password, &["backup", self.source.to_str().unwrap()])
            .1
    }

    /// A new repository at `name` (encrypted with `password`, if any).
    fn init(&self, name: &str, password: Option<&str>) -> PathBuf {
        let repo = self.path(name);
        let args: &[&str] = match password {
            Some(_) => &["--no-cache", "init", "--kdf-target-ms", "20"],
            None => &["--no-cache", "init", "--no-encryption"],
        };
        assert_success(
            &lsmvault_command(&repo, password, args).output().unwrap(),
            "init",
        );
        repo
    }

    /// Without the cache: `verify --read-data` finds nothing, and `latest`
    /// restores the source byte for byte.
    fn assert_intact(&self, repo: &Path, password: Option<&str>, target: &str) {
        self.assert_verifies(repo, password);
        self.assert_restores(repo, password, target);
    }

    fn assert_verifies(&self, repo: &Path, password: Option<&str>) {
        let verify = lsmvault_command(repo, password, &["--no-cache", "verify", "--read-data"])
            .output()
            .unwrap();
        let stdout = assert_success(&verify, "verify --read-data");
        assert!(stdout.contains("no problems found"), "{stdout}");
    }

    /// Without the cache, `latest` restores the source byte for byte.
    fn assert_restores(&self, repo: &Path, password: Option<&str>, target: &str) {
        let target = self.path(target);
        let restore = lsmvault_command(
            repo,
            password,
            &[
                "--no-cache",
                "restore",
                "latest",
                "--target",
                target.to_str().unwrap(),
            ],
        )
        .output()
        .unwrap();
        assert_success(&restore, "restore latest");
        assert_same_tree(&self.source, &target);
    }

    /// The cache directory of the repository with `id`.
    fn repository_cache(&self, id: &str) -> PathBuf {
        self.cache.join(id)
    }
}

/// The repository's id, from its config.
fn repository_id(repo: &Path) -> String {
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(repo.join("config")).unwrap()).unwrap();
    config["id"].as_str().unwrap().to_string()
}

fn packs(repo: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(repo.join("data"))
        .into_iter()
        .map(|entry| entry.unwrap().into_path())
        .filter(|path| path.is_file())
        .collect()
}

/// A cache entry as the cache writes one: the BLAKE3 hash of the content,
/// then the content (so the planted entry passes the cache's own check).
fn plant_entry(path: &Path, content: &[u8]) {
    let mut entry = blake3::hash(content).as_bytes().to_vec();
    entry.extend_from_slice(content);
    fs::write(path, entry).unwrap();
}

/// The content of a cache entry (after its hash).
fn entry_content(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap()[32..].to_vec()
}

/// Review finding F4: two copies of one repository (`cp -a`) share one
/// cache. A pack deleted in the copy is written again by the next backup
/// into the copy (the original's pack listing is not the copy's), and the
/// copy's new snapshot restores.
#[test]
fn a_pack_missing_in_a_copy_is_written_again_whatever_the_original_cached() {
    let setup = Setup::new();
    let original = setup.init("original", None);
    setup.backup(&original, None);
    setup.backup(&original, None);
    let copy = setup.path("copy");
    copy_tree(&original, &copy);
    // Both warm, their listings side by side in one cache.
    setup.backup(&copy, None);
    setup.backup(&original, None);
    let lost = packs(&copy);
    assert_eq!(lost.len(), 1, "{lost:?}");
    fs::remove_file(&lost[0]).unwrap();
    let counts = setup.backup(&copy, None);
    assert_eq!(counts.of("data", "write_if_absent"), 1, "{counts:?}");
    setup.assert_restores(&copy, None, "restored-copy");
    // The lost pack's index entries stay until a prune, as after any heal
    // (unless the pack written again has the same bytes, hence name).
    let prune = lsmvault_command(&copy, None, &["--no-cache", "prune", "--max-unused", "0"])
        .output()
        .unwrap();
    assert_success(&prune, "prune of the copy");
    setup.assert_verifies(&copy, None);
    // The original is warm still, and intact.
    let counts = setup.backup(&original, None);
    assert_eq!(counts.of("data", "write_if_absent"), 0, "{counts:?}");
    setup.assert_intact(&original, None, "restored-original");
    assert_eq!(snapshot_ids(&copy).len(), 4);
}

/// Review finding F5: someone who can write the cache replaces the cached
/// config of an encrypted repository with a plaintext config of the same
/// id (and removes the cached key file), the cached index listing matching
/// the storage's. The next backup must not write plaintext: the planted
/// config is compared with the storage's, the open goes to the storage, and
/// no byte of the new file is found in any pack.
#[test]
fn a_plaintext_config_planted_in_the_cache_never_makes_a_backup_write_plaintext() {
    let setup = Setup::new();
    let password = Some(PASSWORD);
    let repo = setup.init("encrypted", password);
    setup.backup(&repo, password);
    setup.backup(&repo, password);
    let id = repository_id(&repo);
    let state = setup.repository_cache(&id).join("state");
    assert!(state.join("key").exists());
    // The plaintext config of another repository, given this one's id.
    let other = setup.init("plaintext", None);
    let mut planted: serde_json::Value =
        serde_json::from_slice(&fs::read(other.join("config")).unwrap()).unwrap();
    planted["id"] = serde_json::Value::String(id.clone());
    let planted = serde_json::to_vec_pretty(&planted).unwrap();
    plant_entry(&state.join("config"), &planted);
    fs::remove_file(state.join("key")).unwrap();

    let secret = seeded_bytes(77, 200_000);
    fs::write(setup.source.join("secret.sst"), &secret).unwrap();
    let output = setup.output(&repo, password, &["backup", setup.source.to_str().unwrap()]);
    assert_success(&output, "backup with a planted plaintext config");
    let window = &secret[100_000..100_064];
    for pack in packs(&repo) {
        let bytes = fs::read(&pack).unwrap();
        assert!(
            !bytes.windows(window.len()).any(|part| part == window),
            "plaintext of the new file in {}",
            pack.display()
        );
    }
    let counts = counts_of(&output);
    assert!(counts.of("config", "read") >= 1, "{counts:?}");
    setup.assert_intact(&repo, password, "restored");
    // The cache holds the storage's config again, not the planted one.
    assert_eq!(
        entry_content(&state.join("config")),
        fs::read(repo.join("config")).unwrap()
    );
}

/// An encrypted repository's cached config is checked by the key: a
/// cached config edited (its authenticator kept), or a cached key file
/// swapped for another repository's opened by the same password, is
/// refused, the command opens from the storage and writes what the
/// storage's config says, and the cache holds the storage's config again.
#[test]
fn an_encrypted_config_or_key_file_planted_in_the_cache_is_refused_by_the_key() {
    let setup = Setup::new();
    let password = Some(PASSWORD);
    let repo = setup.init("encrypted", password);
    let other = setup.init("other", password);
    setup.backup(&repo, password);
    setup.backup(&other, password);
    let state = setup.repository_cache(&repository_id(&repo)).join("state");
    let stored = fs::read(repo.join("config")).unwrap();
    let edited = String::from_utf8(stored.clone())
        .unwrap()
        .replace("\"pack_size\": 16777216", "\"pack_size\": 1048576");
    assert_ne!(edited.as_bytes(), stored.as_slice());
    let other_state = setup.repository_cache(&repository_id(&other)).join("state");
    let other_key = entry_content(&other_state.join("key"));
    let plants: [(&str, &[u8]); 2] = [("config", edited.as_bytes()), ("key", &other_key)];
    for (entry, content) in plants {
        plant_entry(&state.join(entry), content);
        let counts = setup.backup(&repo, password);
        assert_eq!(counts.of("config", "read"), 1, "{entry}: {counts:?}");
        assert_eq!(entry_content(&state.join("config")), stored, "{entry}");
        // Warm again.
        let counts = setup.backup(&repo, password);
        assert_eq!(counts.of("config", "read"), 0, "{entry}: {counts:?}");
    }
    setup.assert_intact(&repo, password, "restored");
}

/// The one location directory in a repository's `state/` (whose listings
/// it holds), by name.
fn location_directory(state: &Path) -> String {
    let mut found: Vec<String> = fs::read_dir(state)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_type().unwrap().is_dir())
        .map(|entry| entry.file_name().into_string().unwrap())
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}

/// Someone who can write the cache points the location of repository A at
/// the cache of repository B, opened by the same password, and gives B's
/// cache A's index listing (copied from A's own). B's config and key file
/// are authentic, so only the listing could confirm the warm handle; it
/// was made under A's key, so it does not, the config is read and
/// differs, and the backup runs from the storage: nothing is written into
/// A under B's key.
#[test]
fn another_repositorys_cache_opened_by_the_same_password_is_not_believed() {
    let setup = Setup::new();
    let password = Some(PASSWORD);
    let a = setup.init("a", password);
    let b = setup.init("b", password);
    for repo in [&a, &b, &a, &b] {
        setup.backup(repo, password);
    }
    let a_state = setup.repository_cache(&repository_id(&a)).join("state");
    let b_state = setup.repository_cache(&repository_id(&b)).join("state");
    let a_location = location_directory(&a_state);
    let b_location = location_directory(&b_state);
    let planted = b_state.join(&a_location);
    fs::create_dir_all(&planted).unwrap();
    fs::copy(
        a_state.join(&a_location).join("indexlisting"),
        planted.join("indexlisting"),
    )
    .unwrap();
    let locations = setup.cache.join("locations");
    fs::copy(locations.join(&b_location), locations.join(&a_location)).unwrap();

    fs::write(setup.source.join("new.sst"), seeded_bytes(5, 100_000)).unwrap();
    setup.backup(&a, password);
    setup.assert_intact(&a, password, "restored-a");
    setup.assert_verifies(&b, password);
}

/// A plaintext repository opens warm with one config read, which confirms
/// it: no key files, no other check.
#[test]
fn a_warm_plaintext_open_reads_the_config_once() {
    let setup = Setup::new();
    let repo = setup.init("plaintext", None);
    setup.backup(&repo, None);
    let counts = setup.backup(&repo, None);
    assert_eq!(counts.of("config", "read"), 1, "{counts:?}");
    assert_eq!(counts.of("keys", "list"), 0, "{counts:?}");
    let (_, counts) = setup.run(&repo, None, &["snapshots"]);
    assert_eq!(counts.of("config", "read"), 1, "{counts:?}");
}

/// The name of the key file the cache would open the repository with.
fn remembered_key(state: &Path) -> Option<String> {
    let path = state.join("key");
    path.exists().then(|| {
        let content = entry_content(&path);
        let end = content.iter().position(|byte| *byte == b'\n').unwrap();
        String::from_utf8(content[..end].to_vec()).unwrap()
    })
}

fn key_files(repo: &Path) -> Vec<String> {
    fs::read_dir(repo.join("keys"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect()
}

/// `key passwd` through the cache, then a backup with the new password:
/// the warm open uses the new key file (no config or key read), and the
/// old one, removed by passwd, is remembered nowhere.
#[test]
fn after_key_passwd_the_cache_opens_with_the_new_key_file_only() {
    let setup = Setup::new();
    let repo = setup.init("encrypted", Some(PASSWORD));
    setup.backup(&repo, Some(PASSWORD));
    let state = setup.repository_cache(&repository_id(&repo)).join("state");
    let old = key_files(&repo);
    assert_eq!(remembered_key(&state), Some(old[0].clone()));
    let new = "the new password";
    let mut all = vec!["--cache-dir", setup.cache.to_str().unwrap()];
    all.extend_from_slice(&["key", "passwd", "--kdf-target-ms", "20"]);
    let passwd = lsmvault_command(&repo, Some(PASSWORD), &all)
        .env("LSMVAULT_NEW_PASSWORD", new)
        .output()
        .unwrap();
    assert_success(&passwd, "key passwd");
    let current = key_files(&repo);
    assert_eq!(current.len(), 1);
    assert_ne!(current, old);
    assert_eq!(remembered_key(&state), Some(current[0].clone()));
    let counts = setup.backup(&repo, Some(new));
    for (kind, method) in [("config", "read"), ("keys", "list"), ("keys", "read")] {
        assert_eq!(counts.of(kind, method), 0, "{kind} {method}: {counts:?}");
    }
    assert_eq!(remembered_key(&state), Some(current[0].clone()));
    let refused = setup.output(&repo, Some(PASSWORD), &["snapshots"]);
    assert_eq!(refused.status.code(), Some(WRONG_PASSWORD), "{refused:?}");
    // The old key file is in no cache entry.
    let cached_keys: Vec<String> = fs::read_dir(state.parent().unwrap().join("keys"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(cached_keys, current);
    setup.assert_intact(&repo, Some(new), "restored");
}
