//! An open repository: its configuration, keys and backend, and typed,
//! verified access to its objects.
//!
//! [`Repository`] is the entry point of the library. This module opens and
//! creates repositories; the concerns of an open handle each have a module:
//! key files ([`keys`]), the index cache ([`index_cache`]), blob and tree reads
//! ([`blobs`]), snapshot files ([`snapshots`]), locks ([`lock`]), and
//! [`PackWriter`], the one place where new blobs become packs ([`pack_writer`]).
//! Operations (`crate::ops`) build on these and never on each other.

pub mod blobs;
pub mod index_cache;
pub mod keys;
pub mod lock;
pub mod pack_writer;
pub mod snapshots;
pub mod store;
pub mod tree_walker;
pub mod wal;

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::backend::{Backend, LocalBackend, ObjectKind, WriteOutcome};
use crate::codec::chunker::ChunkerParams;
use crate::codec::compression::Compression;
use crate::codec::crypto::{self, Cipher, KdfParams, KeyFile, Keys, MasterKey, DEFAULT_KDF_TARGET};
use crate::error::{Error, Result};
use crate::format::config::{Config, EncryptionConfig, DEFAULT_PACK_SIZE, REPOSITORY_VERSION};
use crate::format::index::Index;
use crate::id::Id;
use lock::{host_name, user_name};

pub use index_cache::{DamagedIndexFile, IndexDamageHook, IndexFiles};
pub use keys::KeyListing;
pub use pack_writer::{BackendSink, PackSink, PackWriter, WriteSummary};
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
        if backend.exists()? || holds_repository_objects(backend.as_ref())? {
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
                    &host_name(),
                    &user_name(),
                )?;
                keys::write_key_file(backend.as_ref(), &name, &key_file)?;
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
        if backend.write_if_absent(ObjectKind::Config, "config", &config.encode()?)?
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
            index_damage: Mutex::new(Vec::new()),
            index_damage_hook: None,
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
        let config = Config::decode(&bytes, &backend.location())?;
        let compression = config.default_compression()?;
        let (master, cipher) = match config.cipher(&backend.location())? {
            None => {
                refuse_plaintext_with_keys(backend.as_ref())?;
                (None, Cipher::default())
            }
            Some(cipher) => {
                let password = password.ok_or_else(|| Error::PasswordRequired {
                    location: backend.location(),
                })?;
                (
                    Some(keys::unlock_master_key(backend.as_ref(), password, cipher)?),
                    cipher,
                )
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
            index_damage: Mutex::new(Vec::new()),
            index_damage_hook: None,
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

    /// The repository's default blob compression.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The repository's `config` object, as read at open or written at init.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The storage the repository lives in. Objects read through it
    /// directly are not checked or opened: that is up to the caller.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }
}

/// Refuses a repository whose `config` says plaintext while `keys/` holds
/// key files: `config` is not authenticated (binding it to the master key
/// would change the format), so an attacker with write access to the storage
/// could otherwise drop its encryption section and have the next backup
/// write plaintext packs into an encrypted repository. Key files exist only
/// in repositories initialised with a password, so their presence is proof
/// that the config was altered.
fn refuse_plaintext_with_keys(backend: &dyn Backend) -> Result<()> {
    if backend.list(ObjectKind::Key)?.is_empty() {
        return Ok(());
    }
    Err(Error::AuthenticationFailed {
        object: "config (it says plaintext but the repository has key files: \
                 the config was altered)"
            .into(),
    })
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
