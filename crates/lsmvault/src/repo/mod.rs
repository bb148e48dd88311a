//! A repository: its configuration, its index, and typed access to its objects.
//!
//! [`Repository`] is the entry point of the library. It owns the backend and
//! the `config`, loads the index on first use, and offers the building blocks
//! the commands share: reading verified blobs and trees, listing snapshots, and
//! [`PackWriter`], the one place where new blobs become packs and index files.

pub mod lock;

use std::collections::HashSet;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::backend::{self, Backend, LocalBackend, ObjectKind, WriteOutcome};
use crate::codec::chunker::ChunkerParams;
use crate::codec::compression::Compression;
use crate::codec::crypto::{
    self, Cipher, KdfParams, KeyFile, Keys, MasterKey, SealKind, DEFAULT_KDF_TARGET,
};
use crate::error::{Error, Result};
use crate::format::index::{decode_index_file, encode_index_file, BlobLocation, Index};
use crate::format::pack::{self, BlobKind, Packer};
use crate::format::snapshot::{self, Snapshot, SnapshotEntry};
use crate::format::tree::Tree;
use crate::id::Id;
use crate::repo::lock::{user_name, LockGuard, LockKind};

/// Current repository format version (the `version` field of `config`).
/// Version 2 added compressed blobs; version 1 repositories (never compressed)
/// are still read and written, without compression.
pub const REPOSITORY_VERSION: u32 = 2;
/// The oldest repository format version this build opens.
pub const OLDEST_REPOSITORY_VERSION: u32 = 1;

/// Default target size of a pack file.
pub const DEFAULT_PACK_SIZE: u32 = 16 * 1024 * 1024;

/// Index files hold at most this many entries, so each stays a few MiB.
const INDEX_ENTRIES_PER_FILE: usize = 50_000;

/// The repository's `config` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub version: u32,
    /// Random id of this repository (64 hex digits).
    pub id: String,
    pub chunker: ChunkerParams,
    /// Target size of pack files in bytes.
    pub pack_size: u32,
    /// Default blob compression: `auto`, `off`, `auto:N` or `zstd:N`
    /// (`none` in format version 1, which has no compression).
    pub compression: String,
    /// Encryption scheme; `null` for a plaintext repository.
    pub encryption: Option<EncryptionConfig>,
}

/// The encryption scheme of an encrypted repository (see `docs/security.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionConfig {
    /// `aes-256-gcm-subkey` or `xchacha20-poly1305` (see [`Cipher`]).
    pub cipher: String,
    /// `argon2id` (parameters per key file).
    pub kdf: String,
    /// `keyed-blake3`.
    pub blob_ids: String,
    /// `seeded`: the FastCDC gear table is XORed with a seed derived from the master key.
    pub chunker_gear: String,
}

impl EncryptionConfig {
    fn with_cipher(cipher: Cipher) -> EncryptionConfig {
        EncryptionConfig {
            cipher: cipher.name().into(),
            kdf: "argon2id".into(),
            blob_ids: "keyed-blake3".into(),
            chunker_gear: "seeded".into(),
        }
    }
}

/// Options for [`Repository::init`].
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub chunker: ChunkerParams,
    pub pack_size: u32,
    pub compression: Compression,
    /// Encrypt the repository under this password (`None`: plaintext).
    pub password: Option<String>,
    /// How long one key derivation should take (argon2id is tuned to it).
    pub kdf_target: Duration,
    /// The AEAD of an encrypted repository.
    pub cipher: Cipher,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            chunker: ChunkerParams::default(),
            pack_size: DEFAULT_PACK_SIZE,
            compression: Compression::default(),
            password: None,
            kdf_target: DEFAULT_KDF_TARGET,
            cipher: Cipher::default(),
        }
    }
}

/// A key file as listed by [`Repository::list_keys`].
#[derive(Debug, Clone, Serialize)]
pub struct KeyListing {
    pub name: String,
    pub created: String,
    pub host: String,
    pub user: String,
    /// Whether this repository handle was opened with it.
    pub current: bool,
}

/// An open repository.
pub struct Repository {
    backend: Arc<dyn Backend>,
    config: Config,
    compression: Compression,
    keys: Keys,
    /// The master key and the key file it was opened with (encrypted only).
    master: Option<(MasterKey, String)>,
    /// Loaded on first use; extended by this process's writes and reloaded when
    /// a lookup misses (another process may have written since).
    index: RwLock<Option<Arc<Index>>>,
    /// How long [`Repository::lock`] keeps trying while another command's
    /// lock conflicts (zero: fail at once).
    lock_retry: Duration,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Repository")
            .field("location", &self.backend.location())
            .field("config", &self.config)
            .finish()
    }
}

fn random_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    crypto::random_bytes(&mut bytes)?;
    Ok(Id(bytes).to_hex())
}

impl Repository {
    /// Creates a new repository in `backend` (encrypted when a password is given).
    pub fn init(backend: Arc<dyn Backend>, options: InitOptions) -> Result<Repository> {
        options.chunker.validate()?;
        if options.pack_size < 1024 * 1024 {
            return Err(Error::InvalidArgument(format!(
                "pack size {} is below 1 MiB",
                options.pack_size
            )));
        }
        if backend.exists()? {
            return Err(Error::RepositoryExists {
                location: backend.location(),
            });
        }
        backend.create()?;
        let master = match &options.password {
            Some(password) => {
                let master = MasterKey::generate()?;
                let name = random_id()?;
                let key_file = KeyFile::wrap(
                    &master,
                    password.as_bytes(),
                    KdfParams::tuned(options.kdf_target)?,
                    &crate::repo::lock::host_name(),
                    &user_name(),
                )?;
                write_key_file(backend.as_ref(), &name, &key_file)?;
                Some((master, name))
            }
            None => None,
        };
        let config = Config {
            version: REPOSITORY_VERSION,
            id: random_id()?,
            chunker: options.chunker,
            pack_size: options.pack_size,
            compression: options.compression.to_string(),
            encryption: master
                .as_ref()
                .map(|_| EncryptionConfig::with_cipher(options.cipher)),
        };
        let bytes = serde_json::to_vec_pretty(&config)
            .map_err(|error| Error::InvalidArgument(error.to_string()))?;
        if backend.write_if_absent(ObjectKind::Config, "config", &bytes)?
            == WriteOutcome::AlreadyExisted
        {
            return Err(Error::RepositoryExists {
                location: backend.location(),
            });
        }
        Ok(Repository {
            backend,
            config,
            compression: options.compression,
            keys: master
                .as_ref()
                .map_or_else(Keys::plaintext, |(master, _)| master.keys(options.cipher)),
            master,
            index: RwLock::new(None),
            lock_retry: Duration::ZERO,
        })
    }

    /// Opens an existing plaintext repository; an encrypted one fails with
    /// [`Error::PasswordRequired`] (use [`Repository::open_with_password`]).
    pub fn open(backend: Arc<dyn Backend>) -> Result<Repository> {
        Repository::open_inner(backend, None)
    }

    /// Opens an existing repository; the password is used only if it is encrypted.
    pub fn open_with_password(backend: Arc<dyn Backend>, password: &str) -> Result<Repository> {
        Repository::open_inner(backend, Some(password))
    }

    fn open_inner(backend: Arc<dyn Backend>, password: Option<&str>) -> Result<Repository> {
        if !backend.exists()? {
            return Err(Error::RepositoryNotFound {
                location: backend.location(),
            });
        }
        let bytes = backend.read(ObjectKind::Config, "config")?;
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        let version: VersionOnly = serde_json::from_slice(&bytes)
            .map_err(|error| Error::corrupt("config", error.to_string()))?;
        if !(OLDEST_REPOSITORY_VERSION..=REPOSITORY_VERSION).contains(&version.version) {
            return Err(Error::UnsupportedVersion {
                object: format!("repository {}", backend.location()),
                found: version.version,
                supported: REPOSITORY_VERSION,
            });
        }
        let config: Config = serde_json::from_slice(&bytes)
            .map_err(|error| Error::corrupt("config", error.to_string()))?;
        config.chunker.validate()?;
        let compression = match (config.version, config.compression.as_str()) {
            (1, "none") => Compression::Off,
            (1, other) => {
                return Err(Error::corrupt(
                    "config",
                    format!("format version 1 has no compression, but names {other:?}"),
                ))
            }
            (_, text) => text.parse()?,
        };
        let (master, cipher) = match &config.encryption {
            None => (None, Cipher::default()),
            Some(scheme) => {
                let cipher = Cipher::from_name(&scheme.cipher)
                    .filter(|cipher| *scheme == EncryptionConfig::with_cipher(*cipher))
                    .ok_or_else(|| Error::UnsupportedVersion {
                        object: format!(
                            "repository {} (encryption {scheme:?})",
                            backend.location()
                        ),
                        found: config.version,
                        supported: REPOSITORY_VERSION,
                    })?;
                let password = password.ok_or_else(|| Error::PasswordRequired {
                    location: backend.location(),
                })?;
                (Some(unlock_master_key(backend.as_ref(), password)?), cipher)
            }
        };
        Ok(Repository {
            backend,
            config,
            compression,
            keys: master
                .as_ref()
                .map_or_else(Keys::plaintext, |(master, _)| master.keys(cipher)),
            master,
            index: RwLock::new(None),
            lock_retry: Duration::ZERO,
        })
    }

    /// Whether the repository is encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.keys.is_encrypted()
    }

    /// The repository's secrets (identity operations for a plaintext repository).
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Adds a key file wrapping the master key under `password`; returns its name.
    pub fn add_key(&self, password: &str, kdf_target: Duration) -> Result<String> {
        let (master, _) = self.master.as_ref().ok_or_else(|| {
            Error::InvalidArgument("the repository is not encrypted: it has no keys".into())
        })?;
        let name = random_id()?;
        let key_file = KeyFile::wrap(
            master,
            password.as_bytes(),
            KdfParams::tuned(kdf_target)?,
            &crate::repo::lock::host_name(),
            &user_name(),
        )?;
        write_key_file(self.backend.as_ref(), &name, &key_file)?;
        Ok(name)
    }

    /// Every key file of the repository.
    pub fn list_keys(&self) -> Result<Vec<KeyListing>> {
        let current = self.master.as_ref().map(|(_, name)| name.as_str());
        let mut keys = Vec::new();
        for object in self.backend.list(ObjectKind::Key)? {
            let file = read_key_file(self.backend.as_ref(), &object.name)?;
            keys.push(KeyListing {
                current: current == Some(object.name.as_str()),
                name: object.name,
                created: file.created,
                host: file.host,
                user: file.user,
            });
        }
        keys.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
        Ok(keys)
    }

    /// Removes a key file (not the one in use, never the last one).
    pub fn remove_key(&self, name: &str) -> Result<()> {
        let keys = self.list_keys()?;
        let target = keys
            .iter()
            .find(|key| key.name == name || (name.len() >= 8 && key.name.starts_with(name)))
            .ok_or_else(|| {
                Error::InvalidArgument(format!("no key {name:?}; see `lsmvault key list`"))
            })?;
        if target.current {
            return Err(Error::InvalidArgument(format!(
                "key {} is the one this command opened the repository with; open with another key to remove it",
                &target.name[..8]
            )));
        }
        Ok(self.backend.delete(ObjectKind::Key, &target.name)?)
    }

    /// Replaces the current key's password: adds a new key file, removes the old one.
    pub fn change_password(&mut self, password: &str, kdf_target: Duration) -> Result<String> {
        let name = self.add_key(password, kdf_target)?;
        if let Some((master, old)) = self.master.take() {
            self.backend.delete(ObjectKind::Key, &old)?;
            self.master = Some((master, name.clone()));
        }
        Ok(name)
    }

    /// Creates a repository in a local directory.
    pub fn init_local(path: impl AsRef<Path>, options: InitOptions) -> Result<Repository> {
        Repository::init(Arc::new(LocalBackend::new(path.as_ref())), options)
    }

    /// Opens a plaintext repository in a local directory.
    pub fn open_local(path: impl AsRef<Path>) -> Result<Repository> {
        Repository::open(Arc::new(LocalBackend::new(path.as_ref())))
    }

    /// Opens a repository in a local directory, encrypted or not.
    pub fn open_local_with_password(path: impl AsRef<Path>, password: &str) -> Result<Repository> {
        Repository::open_with_password(Arc::new(LocalBackend::new(path.as_ref())), password)
    }

    /// Takes a repository lock held until the guard is dropped.
    ///
    /// The cached index is dropped once the lock is held: a prune may have
    /// run since it was loaded (between two commands of a long-lived handle),
    /// and a blob of a pack it deleted must not pass for stored. While the
    /// lock is held no prune runs, so the index loaded next stays valid
    /// (other backups only add to it).
    pub fn lock(&self, kind: LockKind, purpose: &str) -> Result<LockGuard> {
        let started = std::time::Instant::now();
        let guard = loop {
            match LockGuard::acquire(Arc::clone(&self.backend), kind, purpose) {
                Err(Error::RepositoryLocked { .. }) if started.elapsed() < self.lock_retry => {
                    std::thread::sleep(lock_retry_pause());
                }
                other => break other?,
            }
        };
        *self
            .index
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
        Ok(guard)
    }

    /// Makes every command of this handle wait up to `wait` for a
    /// conflicting lock to go away (restic's `--retry-lock`): a prune
    /// started next to nightly backups then runs when they finish.
    pub fn set_lock_retry(&mut self, wait: Duration) {
        self.lock_retry = wait;
    }

    /// The repository's default blob compression.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The blob index, loaded from every index file on first use.
    pub fn index(&self) -> Result<Arc<Index>> {
        let cached = self
            .index
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        match cached {
            Some(index) => Ok(index),
            None => self.refresh_index(),
        }
    }

    /// Reloads the index from every index file (to see other processes' writes).
    pub fn refresh_index(&self) -> Result<Arc<Index>> {
        let loaded = Arc::new(self.load_index()?);
        *self
            .index
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Arc::clone(&loaded));
        Ok(loaded)
    }

    /// Adds this process's newly indexed blobs to the cached index.
    fn remember(&self, locations: &[BlobLocation]) {
        let mut cached = self
            .index
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(index) = cached.as_mut() {
            let index = Arc::make_mut(index);
            for location in locations {
                index.insert(*location);
            }
        }
    }

    fn load_index(&self) -> Result<Index> {
        let files = self.backend.list(ObjectKind::Index)?;
        let decoded: Vec<Vec<BlobLocation>> = files
            .par_iter()
            .map(|file| self.read_index_file(&file.name))
            .collect::<Result<_>>()?;
        let mut index = Index::new();
        for location in decoded.into_iter().flatten() {
            index.insert(location);
        }
        Ok(index)
    }

    /// Reads and checks one index file.
    pub fn read_index_file(&self, name: &str) -> Result<Vec<BlobLocation>> {
        let bytes = self.backend.read(ObjectKind::Index, name)?;
        // Decoding first: in an encrypted repository a changed byte is then
        // reported as the authentication failure it is.
        let locations = decode_index_file(name, &bytes, &self.keys)?;
        check_name(ObjectKind::Index, name, &bytes)?;
        Ok(locations)
    }

    /// Reads a blob, decodes it and checks it against its id.
    pub fn read_blob(&self, id: &Id) -> Result<Vec<u8>> {
        let cached = self.index()?.get(id).copied();
        let location = match cached {
            Some(location) => location,
            // Another process may have indexed it since the index was loaded.
            None => *self.refresh_index()?.get(id).ok_or_else(|| {
                Error::corrupt(
                    format!("blob {id}"),
                    "not in the index (its pack is missing or unindexed)",
                )
            })?,
        };
        self.read_blob_at(&location)
    }

    /// Reads a blob from a known location and checks it against its id.
    pub fn read_blob_at(&self, location: &BlobLocation) -> Result<Vec<u8>> {
        let entry = &location.entry;
        let pack_name = location.pack.to_hex();
        let stored = self
            .backend
            .read_range(
                ObjectKind::Pack,
                &pack_name,
                u64::from(entry.offset),
                u64::from(entry.stored_length),
            )
            .map_err(|error| match error {
                backend::Error::NotFound { .. } => Error::corrupt(
                    format!("pack {pack_name}"),
                    format!("missing, but the index says it holds blob {}", entry.id),
                ),
                other => other.into(),
            })?;
        pack::decode_blob(entry, stored, &self.keys, || {
            format!("blob {} in pack {pack_name}", entry.id)
        })
    }

    /// Reads and decodes a tree.
    pub fn read_tree(&self, id: &Id) -> Result<Tree> {
        let bytes = self.read_blob(id)?;
        Tree::decode(id, &bytes)
    }

    /// Every snapshot, oldest first.
    pub fn snapshots(&self) -> Result<Vec<SnapshotEntry>> {
        let files = self.backend.list(ObjectKind::Snapshot)?;
        let mut entries: Vec<SnapshotEntry> = files
            .par_iter()
            .map(|file| self.read_snapshot(&file.name))
            .collect::<Result<_>>()?;
        snapshot::sort_by_time(&mut entries);
        Ok(entries)
    }

    /// Reads one snapshot file by its full name, checking its id.
    pub fn read_snapshot(&self, name: &str) -> Result<SnapshotEntry> {
        let bytes = self.backend.read(ObjectKind::Snapshot, name)?;
        let json = self
            .keys
            .open(SealKind::Snapshot, &bytes, || format!("snapshot {name}"))?;
        let id = check_name(ObjectKind::Snapshot, name, &bytes)?;
        Ok(SnapshotEntry {
            id,
            snapshot: Snapshot::decode(name, &json)?,
        })
    }

    /// Resolves an id, unique prefix, `latest` or `latest:TAG`.
    pub fn find_snapshot(&self, selector: &str) -> Result<SnapshotEntry> {
        let snapshots = self.snapshots()?;
        snapshot::select(&snapshots, selector).cloned()
    }

    /// Publishes a snapshot file (the commit point of a backup).
    pub fn write_snapshot(&self, snapshot: &Snapshot) -> Result<Id> {
        let bytes = self
            .keys
            .seal(SealKind::Snapshot, &snapshot.encode())?
            .into_owned();
        let id = Id::of(&bytes);
        self.backend
            .write_if_absent(ObjectKind::Snapshot, &id.to_hex(), &bytes)?;
        Ok(id)
    }

    /// Writes index files for `locations` (after their packs were published).
    pub fn write_index(&self, locations: &[BlobLocation]) -> Result<Vec<Id>> {
        let written = locations
            .chunks(INDEX_ENTRIES_PER_FILE)
            .map(|part| {
                let (id, bytes) = encode_index_file(part, &self.keys)?;
                self.backend
                    .write_if_absent(ObjectKind::Index, &id.to_hex(), &bytes)?;
                Ok(id)
            })
            .collect::<Result<Vec<Id>>>()?;
        self.remember(locations);
        Ok(written)
    }
}

fn write_key_file(backend: &dyn Backend, name: &str, file: &KeyFile) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(file)
        .map_err(|error| Error::InvalidArgument(error.to_string()))?;
    backend.write_if_absent(ObjectKind::Key, name, &bytes)?;
    Ok(())
}

fn read_key_file(backend: &dyn Backend, name: &str) -> Result<KeyFile> {
    let bytes = backend.read(ObjectKind::Key, name)?;
    serde_json::from_slice(&bytes)
        .map_err(|error| Error::corrupt(ObjectKind::Key.describe(name), error.to_string()))
}

/// Tries every key file; returns the master key and the name of the file that opened.
fn unlock_master_key(backend: &dyn Backend, password: &str) -> Result<(MasterKey, String)> {
    for object in backend.list(ObjectKind::Key)? {
        let file = read_key_file(backend, &object.name)?;
        if let Some(master) = file.unwrap_key(password.as_bytes(), &object.name)? {
            return Ok((master, object.name));
        }
    }
    Err(Error::WrongPassword {
        location: backend.location(),
    })
}

/// Checks that an object's bytes hash to its name and returns the name as an id.
pub(crate) fn check_name(kind: ObjectKind, name: &str, bytes: &[u8]) -> Result<Id> {
    let expected = Id::from_hex(name)
        .map_err(|_| Error::corrupt(kind.describe(name), "name is not a 64-digit hex id"))?;
    let actual = Id::of(bytes);
    if actual != expected {
        return Err(Error::ChecksumMismatch {
            object: kind.describe(name),
            expected: expected.to_hex(),
            actual: actual.to_hex(),
        });
    }
    Ok(expected)
}

/// A random pause of 50-550 ms between lock attempts, so that two commands
/// that refused each other do not retry in lockstep.
fn lock_retry_pause() -> Duration {
    let mut random = [0u8; 2];
    let jitter = crypto::random_bytes(&mut random)
        .map(|()| u64::from(u16::from_le_bytes(random)) % 500)
        .unwrap_or(250);
    Duration::from_millis(50 + jitter)
}

/// What a [`PackWriter`] wrote.
#[derive(Debug, Default, Clone)]
pub struct WriteSummary {
    /// Where every new blob went (already published, not yet indexed).
    pub locations: Vec<BlobLocation>,
    pub packs: u64,
    pub pack_bytes: u64,
    pub blob_bytes: u64,
}

struct PackerState {
    packer: Packer,
    /// Blobs added by this writer (in any pack, finished or not).
    pending: HashSet<Id>,
}

/// Collects new blobs into packs and publishes each full pack from a dedicated
/// I/O thread, so chunking and hashing continue while a pack is fsync'd.
///
/// Memory is bounded by two packs: the one being filled and the one being
/// written (the hand-over channel has no buffer).
pub struct PackWriter<'repository> {
    repository: &'repository Repository,
    known: Arc<Index>,
    compression: Compression,
    state: Mutex<PackerState>,
    sender: Mutex<Option<SyncSender<Packer>>>,
    thread: Mutex<Option<JoinHandle<Result<WriteSummary>>>>,
}

impl<'repository> PackWriter<'repository> {
    /// A writer that skips blobs the repository's index already has.
    pub fn new(repository: &'repository Repository) -> Result<Self> {
        Self::with_known(repository, repository.index()?)
    }

    /// A writer that skips only the blobs in `known` (prune passes the blobs
    /// of the packs it keeps, so blobs of packs it repacks are written again).
    pub fn with_known(repository: &'repository Repository, known: Arc<Index>) -> Result<Self> {
        let (sender, receiver) = sync_channel::<Packer>(0);
        let backend = Arc::clone(&repository.backend);
        let keys = repository.keys.clone();
        let thread = std::thread::Builder::new()
            .name("lsmvault-pack-writer".into())
            .spawn(move || write_packs(backend.as_ref(), &keys, receiver))
            .map_err(|error| Error::io("starting the pack writer thread", error))?;
        Ok(PackWriter {
            repository,
            known,
            compression: repository.compression,
            state: Mutex::new(PackerState {
                packer: Packer::with_capacity(packer_capacity(repository)),
                pending: HashSet::new(),
            }),
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
        })
    }

    fn state(&self) -> MutexGuard<'_, PackerState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn packer_capacity(&self) -> usize {
        packer_capacity(self.repository)
    }

    /// The keys blob ids are computed with.
    pub fn keys(&self) -> &Keys {
        &self.repository.keys
    }

    /// Compresses new blobs with `compression` instead of the repository's default.
    /// Version 1 repositories are never compressed.
    pub fn set_compression(&mut self, compression: Compression) {
        if self.repository.config.version > 1 {
            self.compression = compression;
        }
    }

    /// Adds a blob unless it is already stored; returns whether it was new.
    /// Compression runs in the calling thread, outside the writer's lock;
    /// encryption runs inside it, straight into the pack buffer (which saves
    /// a chunk-sized allocation and copy; AES-GCM at ~6 GiB/s per core is a
    /// small share next to chunking and hashing, but it is serialised).
    pub fn add(&self, id: Id, kind: BlobKind, data: &[u8]) -> Result<bool> {
        if self.known.contains(&id) || !self.state().pending.insert(id) {
            return Ok(false);
        }
        let (codec, compressed) = self.compression.encode(data);
        let full = {
            let mut state = self.state();
            state.packer.add_encoded(
                id,
                kind,
                codec,
                &compressed,
                data.len(),
                &self.repository.keys,
            )?;
            if state.packer.len() >= self.repository.config.pack_size as usize {
                Some(std::mem::replace(
                    &mut state.packer,
                    Packer::with_capacity(self.packer_capacity()),
                ))
            } else {
                None
            }
        };
        if let Some(packer) = full {
            self.send(packer)?;
        }
        Ok(true)
    }

    fn send(&self, packer: Packer) -> Result<()> {
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        match sender {
            Some(sender) if sender.send(packer).is_ok() => Ok(()),
            // The writer thread stopped early: its error is reported by `finish`.
            _ => Err(self.join_writer().err().unwrap_or_else(|| {
                Error::io(
                    "pack writer",
                    std::io::Error::other("the pack writer stopped unexpectedly"),
                )
            })),
        }
    }

    fn join_writer(&self) -> Result<WriteSummary> {
        self.sender
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        match thread {
            Some(thread) => thread.join().unwrap_or_else(|_| {
                Err(Error::io(
                    "pack writer",
                    std::io::Error::other("the pack writer thread panicked"),
                ))
            }),
            None => Err(Error::io(
                "pack writer",
                std::io::Error::other("the pack writer already finished"),
            )),
        }
    }

    /// Publishes the last pack and waits for all writes; returns what was written.
    /// The caller then writes the index for `locations`.
    pub fn finish(self) -> Result<WriteSummary> {
        let last = std::mem::take(&mut self.state().packer);
        if !last.is_empty() {
            self.send(last)?;
        }
        self.join_writer()
    }
}

/// A pack closes at the first blob reaching the target size: room for the
/// target plus one largest chunk (and its seal).
fn packer_capacity(repository: &Repository) -> usize {
    repository.config.pack_size as usize
        + repository.config.chunker.max_size as usize
        + crypto::SEAL_OVERHEAD
}

fn write_packs(
    backend: &dyn Backend,
    keys: &Keys,
    receiver: Receiver<Packer>,
) -> Result<WriteSummary> {
    let mut summary = WriteSummary::default();
    let mut failure = None;
    for packer in receiver {
        if failure.is_some() {
            break;
        }
        let finished = match packer.finish(keys) {
            Ok(finished) => finished,
            Err(error) => {
                failure = Some(error);
                break;
            }
        };
        match backend.write_if_absent(ObjectKind::Pack, &finished.id.to_hex(), &finished.bytes) {
            Ok(_) => {
                summary.packs += 1;
                summary.pack_bytes += finished.bytes.len() as u64;
                for entry in &finished.entries {
                    summary.blob_bytes += u64::from(entry.raw_length);
                    summary.locations.push(BlobLocation {
                        pack: finished.id,
                        entry: *entry,
                    });
                }
            }
            Err(error) => failure = Some(error.into()),
        }
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(summary),
    }
}
