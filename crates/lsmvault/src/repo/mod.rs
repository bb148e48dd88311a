//! An open repository: its configuration, keys and backend, and typed,
//! verified access to its objects.
//!
//! [`Repository`] is the entry point of the library. This module opens and
//! creates repositories; the concerns of an open handle each have a module:
//! key files ([`keys`]), the index cache ([`index_cache`]), blob and tree reads
//! ([`blobs`]), snapshot files ([`snapshots`]), locks ([`lock`]), and
//! [`PackWriter`], the one place where new blobs become packs ([`pack_writer`]),
//! and what a writer of snapshots checks before it commits ([`commit`]).
//! Operations (`crate::ops`) build on these and never on each other.

pub mod blobs;
pub mod clusters;
pub mod commit;
pub mod file_content;
pub mod index_cache;
pub mod keys;
pub mod lock;
pub mod pack_writer;
pub mod parity;
pub mod path_pattern;
pub mod replay;
pub mod snapshot_filter;
pub mod snapshots;
pub mod store;
pub mod tree_walker;
pub mod upload_pool;
pub mod wal;
mod warm_open;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::backend::{Backend, CacheGate, LocalBackend, MetadataCache, ObjectKind, WriteOutcome};
use crate::codec::chunker::ChunkerParams;
use crate::codec::compression::Compression;
use crate::codec::crypto::{self, Cipher, KdfParams, KeyFile, Keys, MasterKey, DEFAULT_KDF_TARGET};
use crate::error::{Error, Result};
use crate::format::config::{
    Binding, Config, EncryptionConfig, ParityConfig, DEFAULT_PACK_SIZE, REPOSITORY_VERSION,
};
use crate::format::index::Index;
use crate::id::Id;
use lock::{host_name, user_name};

pub use index_cache::{DamagedIndexFile, IndexDamageHook, IndexFiles};
pub use keys::KeyListing;
pub use pack_writer::{BackendSink, PackSink, PackWriter, WriteSummary};
pub use snapshot_filter::SnapshotFilter;
pub use snapshots::{DamagedObject, SelectedSnapshot};

/// Options for [`Repository::init`].
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Chunker parameters, recorded in `config` and fixed for the repository's
    /// life (default: 256 KiB / 1 MiB / 4 MiB).
    pub chunker: ChunkerParams,
    /// Target size of pack files in bytes, recorded in `config` (at least
    /// 1 MiB; default 16 MiB): a pack closes at the first blob reaching it.
    pub pack_size: u32,
    /// Default compression of new blobs, recorded in `config`; a backup may
    /// override it. Default `auto` (zstd level 3 where it pays).
    pub compression: Compression,
    /// Encrypt the repository under this password (`None`: plaintext).
    pub password: Option<String>,
    /// How long one key derivation should take (argon2id is tuned to it).
    pub kdf_target: Duration,
    /// The AEAD of an encrypted repository.
    pub cipher: Cipher,
    /// Reed-Solomon parity over groups of packs (`None`: no parity).
    pub parity: Option<ParityConfig>,
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
            parity: None,
        }
    }
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
    /// The index files skipped as damaged so far (each named once).
    index_damage: Mutex<Vec<index_cache::DamagedIndexFile>>,
    /// Told about each damaged index file when it is first skipped.
    index_damage_hook: Option<index_cache::IndexDamageHook>,
    /// How long [`Repository::lock`] keeps trying while another command's
    /// lock conflicts (zero: fail at once).
    lock_retry: Duration,
    /// What this handle's locks measure their age by ([`lock::LockClock`]).
    lock_clock: lock::LockClock,
    /// The local metadata cache, when the handle was opened with one
    /// ([`Repository::open_asking`]): `backend` then reads index, snapshot
    /// and key files through it, and tree blobs are cached here (`blobs.rs`).
    metadata_cache: Option<Arc<MetadataCache>>,
    /// With the metadata cache: what it may answer instead of the storage,
    /// and the check a handle opened from it waits for before writing
    /// (`backend::cache::state`).
    cache_gate: Option<Arc<CacheGate>>,
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
        if let Some(parity) = &options.parity {
            parity.validate()?;
        }
        if options.pack_size < 1024 * 1024 {
            return Err(Error::InvalidArgument(format!(
                "pack size {} is below 1 MiB",
                options.pack_size
            )));
        }
        if backend.exists()? || holds_repository_objects(backend.as_ref())? {
            return Err(Error::RepositoryExists {
                location: backend.location(),
            });
        }
        backend.create()?;
        probe_conditional_writes(backend.as_ref())?;
        let master = match &options.password {
            Some(password) => {
                let master = MasterKey::generate()?;
                let name = random_id()?;
                let key_file = KeyFile::wrap(
                    &master,
                    password.as_bytes(),
                    KdfParams::tuned(options.kdf_target)?,
                    &host_name(),
                    &user_name(),
                )?;
                keys::write_key_file(backend.as_ref(), &name, &key_file)?;
                Some((master, name))
            }
            None => None,
        };
        let mut config = Config {
            version: REPOSITORY_VERSION,
            id: random_id()?,
            chunker: options.chunker,
            pack_size: options.pack_size,
            compression: options.compression.to_string(),
            encryption: master
                .as_ref()
                .map(|_| EncryptionConfig::with_cipher(options.cipher)),
            parity: options.parity,
            authenticator: None,
        };
        if let Some((master, _)) = &master {
            config = config.bound_to(&master.config_authenticator_key())?;
        }
        if backend.write_if_absent(ObjectKind::Config, "config", &config.encode()?)?
            == WriteOutcome::AlreadyExisted
        {
            return Err(Error::RepositoryExists {
                location: backend.location(),
            });
        }
        let keys = master
            .as_ref()
            .map_or_else(Keys::plaintext, |(master, _)| master.keys(options.cipher));
        Ok(Repository::assemble(
            backend,
            config,
            options.compression,
            keys,
            master,
            None,
        ))
    }

    /// A handle on an opened (or created) repository.
    fn assemble(
        backend: Arc<dyn Backend>,
        config: Config,
        compression: Compression,
        keys: Keys,
        master: Option<(MasterKey, String)>,
        cache: Option<(Arc<MetadataCache>, Arc<CacheGate>)>,
    ) -> Repository {
        let (metadata_cache, cache_gate) = cache.unzip();
        Repository {
            backend,
            config,
            compression,
            keys,
            master,
            index: RwLock::new(None),
            index_damage: Mutex::new(Vec::new()),
            index_damage_hook: None,
            lock_retry: Duration::ZERO,
            lock_clock: lock::LockClock::default(),
            metadata_cache,
            cache_gate,
        }
    }

    /// Opens an existing plaintext repository; an encrypted one fails with
    /// [`Error::PasswordRequired`] (use [`Repository::open_with_password`]).
    pub fn open(backend: Arc<dyn Backend>) -> Result<Repository> {
        Repository::open_inner(backend, &|| Ok(None), Purpose::Use, None)
    }

    /// Opens an existing repository; the password is used only if it is encrypted.
    pub fn open_with_password(backend: Arc<dyn Backend>, password: &str) -> Result<Repository> {
        let password = || Ok(Some(password.to_string()));
        Repository::open_inner(backend, &password, Purpose::Use, None)
    }

    /// Opens an existing repository, reading its config once: `password`
    /// is called only when the config says the repository is encrypted
    /// (`None` from it fails with [`Error::PasswordRequired`]).
    ///
    /// With `cache_root`, the handle reads through a local metadata cache in
    /// `cache_root/<repository id>/` (see [`crate::backend::cache`]): index,
    /// snapshot and key files and trees already there are not downloaded
    /// again. Everything read from the cache is checked as if read from the
    /// backend, but an object lost from the backend can still be served from
    /// it: verify, repair and prune, which decide what the backend holds,
    /// take a handle opened without a cache. A cache directory that cannot
    /// be made is no cache.
    pub fn open_asking(
        backend: Arc<dyn Backend>,
        cache_root: Option<&Path>,
        password: &dyn Fn() -> Result<Option<String>>,
    ) -> Result<Repository> {
        Repository::open_inner(
            backend,
            password,
            Purpose::Use,
            cache_root.map(Path::to_path_buf),
        )
    }

    /// Opens a repository to migrate it (`Repository::migrate`): like
    /// [`Repository::open_with_password`] (`password` may be `None` for a
    /// plaintext one), but an encrypted version 2 repository, whose config is
    /// not authenticated, is opened too instead of refused with
    /// [`Error::MigrationRequired`]. Use the handle for nothing but migration
    /// and what acts on nothing the config says (removing locks): its config
    /// is not authenticated.
    pub fn open_for_migration(
        backend: Arc<dyn Backend>,
        password: Option<&str>,
    ) -> Result<Repository> {
        let password = || Ok(password.map(str::to_string));
        Repository::open_inner(backend, &password, Purpose::Migrate, None)
    }

    fn open_inner(
        backend: Arc<dyn Backend>,
        password: &dyn Fn() -> Result<Option<String>>,
        purpose: Purpose,
        cache_root: Option<PathBuf>,
    ) -> Result<Repository> {
        // Asked once, whether the warm open or the cold one uses it.
        let asked = Mutex::new(None::<Option<String>>);
        let password = || -> Result<Option<String>> {
            let mut asked = asked
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(known) = asked.as_ref() {
                return Ok(known.clone());
            }
            let answer = password()?;
            *asked = Some(answer.clone());
            Ok(answer)
        };
        if let (Some(root), Purpose::Use) = (&cache_root, purpose) {
            if let Some(repository) = warm_open::open_warm(&backend, root, &password)? {
                return Ok(repository);
            }
        }
        let location = backend.location();
        let bytes = read_config(backend.as_ref())?;
        let config = Config::decode(&bytes, &location)?;
        let binding = config.binding(&location)?;
        if binding == Binding::Unbound && purpose != Purpose::Migrate {
            return Err(Error::MigrationRequired {
                location,
                found: config.version,
                supported: REPOSITORY_VERSION,
            });
        }
        // The id only names the cache directory (any plain name will do,
        // even from a config not yet authenticated: every cached object is
        // checked when read).
        let cold = cache_root
            .as_deref()
            .and_then(|root| warm_open::cold_cache(&backend, root, &config.id, &bytes));
        let (backend, cache) = match cold {
            Some(cold) => (cold.backend, Some((cold.cache, cold.gate))),
            None => (backend, None),
        };
        if let (Some((_, gate)), false) = (&cache, binding == Binding::Plaintext) {
            // Its listings wait for the key (bound below).
            gate.expect_key();
        }
        // Nothing the config says is acted on (not even checked, so that an
        // edit is reported as an edit) before it is authenticated.
        let master = match binding {
            Binding::Plaintext => {
                refuse_plaintext_with_keys(backend.as_ref(), &location)?;
                None
            }
            Binding::Unbound | Binding::Bound(_) => {
                let password = password()?.ok_or_else(|| Error::PasswordRequired {
                    location: location.clone(),
                })?;
                Some(keys::unlock_master_key(
                    backend.as_ref(),
                    &password,
                    &config,
                    binding,
                )?)
            }
        };
        if let (Some((_, gate)), Some((master, _))) = (&cache, &master) {
            // The listings this handle caches are bound to its key
            // (`backend::cache::state`); those made while unlocking are
            // written now.
            gate.bind_to_key(master.cache_state_key());
        }
        config.check_parameters()?;
        let compression = config.default_compression()?;
        let cipher = config.cipher(&location)?.unwrap_or_default();
        let keys = master
            .as_ref()
            .map_or_else(Keys::plaintext, |(master, _)| master.keys(cipher));
        let repository = Repository::assemble(backend, config, compression, keys, master, cache);
        if let Some(root) = &cache_root {
            warm_open::remember_cold_open(root, &location, &repository, bytes);
        }
        Ok(repository)
    }

    /// The local metadata cache this handle reads through, if opened with one.
    pub fn metadata_cache(&self) -> Option<&Arc<MetadataCache>> {
        self.metadata_cache.as_ref()
    }

    /// How long a pack listing cached by an earlier command may stand for
    /// the storage's (remote repositories opened with a cache; zero: always
    /// list). See `backend::cache::state`.
    pub fn set_pack_listing_max_age(&self, age: Duration) {
        if let Some(gate) = &self.cache_gate {
            gate.set_pack_listing_max_age(age);
        }
    }

    /// Makes every pack listing of this handle ask the storage
    /// (`backup --verify-existing`).
    pub fn always_list_packs(&self) {
        if let Some(gate) = &self.cache_gate {
            gate.always_list_packs();
        }
    }

    /// For a handle opened from the cached config and key file: makes sure
    /// the location still holds that repository (listing the index if this
    /// command has not), failing with the backend's `CacheOutdated` when it
    /// does not. A no-op for any other handle.
    pub(crate) fn confirm_cache(&self) -> Result<()> {
        match &self.cache_gate {
            Some(gate) => Ok(gate.confirm()?),
            None => Ok(()),
        }
    }

    /// The cache gate, for what may be answered from the cache.
    pub(crate) fn cache_gate(&self) -> Option<&Arc<CacheGate>> {
        self.cache_gate.as_ref()
    }

    /// Whether the repository is encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.keys.is_encrypted()
    }

    /// The repository's secrets (identity operations for a plaintext repository).
    pub fn keys(&self) -> &Keys {
        &self.keys
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

    /// The id in the `config` of the repository in `backend`, read without
    /// opening it (no password, no key derivation). Not authenticated: for
    /// what a wrong id cannot harm until [`Repository::config`] confirms it
    /// (naming a watcher's part of the WAL holding directory).
    pub fn unverified_id(backend: &dyn Backend) -> Result<String> {
        if !backend.exists()? {
            return Err(Error::RepositoryNotFound {
                location: backend.location(),
            });
        }
        let bytes = backend.read(ObjectKind::Config, "config")?;
        Ok(Config::decode(&bytes, &backend.location())?.id)
    }

    /// The repository's default blob compression.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The repository's `config` object, as read at open or written at init.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// This repository's config as format version [`REPOSITORY_VERSION`],
    /// bound to the master key (`None` for a plaintext repository, whose
    /// config has nothing to be bound to).
    pub(crate) fn bound_config(&self) -> Result<Option<Config>> {
        self.master
            .as_ref()
            .map(|(master, _)| self.config.bound_to(&master.config_authenticator_key()))
            .transpose()
    }

    /// Replaces the `config` object by `config` (atomically, see
    /// [`Backend::replace_config`]) and reads it back: it must decode to
    /// the same config and verify under this handle's master key. The
    /// caller holds the exclusive lock and has checked the repository.
    pub(crate) fn replace_config(&mut self, config: Config) -> Result<()> {
        let location = self.backend.location();
        self.backend.replace_config(&config.encode()?)?;
        let written = Config::decode(&self.backend.read(ObjectKind::Config, "config")?, &location)?;
        let verified = match (written.binding(&location)?, &self.master) {
            (Binding::Bound(expected), Some((master, _))) => {
                written.verify_authenticator(&master.config_authenticator_key(), &expected)?
            }
            _ => false,
        };
        if written != config || !verified {
            return Err(Error::corrupt(
                "config",
                "the config read back after replacing it is not the one written",
            ));
        }
        self.config = written;
        Ok(())
    }

    /// The storage the repository lives in. Objects read through it
    /// directly are not checked or opened: that is up to the caller.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }
}

/// Why a repository is opened: migration alone accepts an encrypted
/// version 2 config, which is not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Use,
    Migrate,
}

/// Refuses a repository whose `config` says plaintext while `keys/` holds
/// key files. A plaintext config has no authenticator (there is no secret to
/// bind it to), so an attacker with write access to the storage could
/// otherwise drop the encryption section and its authenticator and have the
/// next backup write plaintext packs into an encrypted repository. Key files
/// exist only in repositories initialised with a password, so their presence
/// is proof that the config was altered.
fn refuse_plaintext_with_keys(backend: &dyn Backend, location: &str) -> Result<()> {
    if backend.list(ObjectKind::Key)?.is_empty() {
        return Ok(());
    }
    Err(Error::ConfigNotAuthentic {
        location: location.to_string(),
        reason: "it says plaintext but the repository has key files: the config was altered".into(),
    })
}

/// The `config` object, or [`Error::RepositoryNotFound`] when there is
/// none. One request when it is there (every command opens a repository: on
/// an object store each request counts); whether a failed read means "no
/// repository" is then asked of [`Backend::exists`], as before.
fn read_config(backend: &dyn Backend) -> Result<Vec<u8>> {
    match backend.read(ObjectKind::Config, "config") {
        Ok(bytes) => Ok(bytes),
        Err(error) => {
            if !backend.exists()? {
                return Err(Error::RepositoryNotFound {
                    location: backend.location(),
                });
            }
            Err(error.into())
        }
    }
}

/// Whether the location holds snapshot, index or key files: a repository
/// whose `config` was lost. `init` must not write a new config over them
/// (a new id and master key would orphan the data they describe).
fn holds_repository_objects(backend: &dyn Backend) -> Result<bool> {
    for kind in [ObjectKind::Snapshot, ObjectKind::Index, ObjectKind::Key] {
        if !backend.list(kind)?.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Refuses a storage whose create-if-absent write does not refuse an
/// existing name (an S3-compatible server that ignores `If-None-Match: *`):
/// locks, and concurrent backups of one blob, depend on it. Writes a probe
/// object twice under a random lock name, reads it back and deletes it; a
/// leftover (a crash in between) does not parse as a lock, so it is nobody's
/// lock and `unlock` removes it.
fn probe_conditional_writes(backend: &dyn Backend) -> Result<()> {
    let name = random_id()?;
    let first = b"lsmvault init: conditional write probe, first write";
    let second = b"lsmvault init: conditional write probe, second write";
    let created = backend.write_if_absent(ObjectKind::Lock, &name, first)?;
    let outcome = backend.write_if_absent(ObjectKind::Lock, &name, second);
    let kept = backend.read(ObjectKind::Lock, &name);
    backend.delete(ObjectKind::Lock, &name)?;
    let refusal = match (created, outcome?, kept?) {
        (WriteOutcome::Created, WriteOutcome::AlreadyExisted, kept) if kept == first => {
            return Ok(())
        }
        (WriteOutcome::AlreadyExisted, _, _) => "was refused on the first write of a new name",
        (_, WriteOutcome::Created, _) => "reported a creation over the first",
        _ => "was refused but replaced the first",
    };
    Err(Error::ConditionalWritesUnsupported {
        location: backend.location(),
        outcome: refusal.to_string(),
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
