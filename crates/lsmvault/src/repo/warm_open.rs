//! Opening a repository from its metadata cache: the config and key file
//! that last opened it at this location, without asking the storage.
//!
//! Owns the choice between a warm and a cold open and what a cold open
//! leaves in the cache for the next one. A warm open decrypts the master key
//! from the cached key file (the key derivation runs as always) and checks
//! the cached config's authenticator under it; the handle then starts
//! unchecked, and its [`CacheGate`] holds back every write until the first
//! index listing (or the storage's config) confirms it — see
//! [`crate::backend::cache::state`]. A cached plaintext config has no
//! authenticator to check: a warm open compares it with the storage's config
//! (one request) before believing it, so a cache tampered with cannot make
//! an encrypted repository open as a plaintext one. Anything missing, damaged or refused in
//! the cache (a wrong password included) falls back to the cold open, which
//! reads config and keys from the storage and drops a cache whose config
//! differs from the storage's.

use std::path::Path;
use std::sync::Arc;

use crate::backend::cache::state::{self, drop_cache, remember_repository, repository_at};
use crate::backend::{Backend, CacheGate, CachingBackend, MetadataCache, ObjectKind, OpenRecord};
use crate::codec::crypto::{Keys, MasterKey};
use crate::error::Result;
use crate::format::config::{Binding, Config};
use crate::repo::{keys, Repository};

/// What a cold open through the cache needs: the cache directory, the gate,
/// and the backend reading through them.
pub(super) struct ColdCache {
    pub cache: Arc<MetadataCache>,
    pub gate: Arc<CacheGate>,
    pub backend: Arc<dyn Backend>,
}

/// The cache for a cold open of the repository whose config is `config`
/// (the bytes just read from the storage): a cache of another config at
/// this location is dropped first (another repository lives there now, or
/// a migration replaced the config).
pub(super) fn cold_cache(
    storage: &Arc<dyn Backend>,
    root: &Path,
    id: &str,
    config: &[u8],
) -> Option<ColdCache> {
    let location = storage.location();
    if let Some(known) = repository_at(root, &location) {
        if let Some(cache) = MetadataCache::for_repository(root, &known) {
            if cache
                .open_record()
                .is_some_and(|record| record.config != config)
            {
                drop_cache(&cache);
            }
        }
        if known != id {
            state::forget_location(root, &location);
        }
    }
    let cache = MetadataCache::for_repository(root, id)?;
    let record = OpenRecord {
        config: config.to_vec(),
        key: None,
    };
    let gate = Arc::new(CacheGate::new(
        Arc::clone(storage),
        Arc::clone(&cache),
        root,
        record,
        true,
    ));
    let backend = Arc::new(CachingBackend::with_gate(
        Arc::clone(storage),
        Arc::clone(&cache),
        Arc::clone(&gate),
    ));
    Some(ColdCache {
        cache,
        gate,
        backend,
    })
}

/// Records what a cold open found, for the next warm open at `location`.
pub(super) fn remember_cold_open(
    root: &Path,
    location: &str,
    repository: &Repository,
    config: Vec<u8>,
) {
    let Some(cache) = repository.metadata_cache() else {
        return;
    };
    let key = match &repository.master {
        // Read through the cache: the unlock just stored it there.
        Some((_, name)) => match repository.backend.read(ObjectKind::Key, name) {
            Ok(bytes) => Some((name.clone(), bytes)),
            Err(_) => return,
        },
        None => None,
    };
    cache.remember_open(&OpenRecord { config, key });
    remember_repository(root, location, &repository.config.id);
}

/// Opens the repository at `storage` from the cache in `root`, or `None`
/// when the cache cannot (the caller opens from the storage). Fails only
/// when asking for the password fails.
pub(super) fn open_warm(
    storage: &Arc<dyn Backend>,
    root: &Path,
    password: &dyn Fn() -> Result<Option<String>>,
) -> Result<Option<Repository>> {
    let location = storage.location();
    let Some(id) = repository_at(root, &location) else {
        return Ok(None);
    };
    let Some(cache) = MetadataCache::for_repository(root, &id) else {
        return Ok(None);
    };
    let Some(record) = cache.open_record() else {
        return Ok(None);
    };
    let Ok(config) = Config::decode(&record.config, &location) else {
        return Ok(None);
    };
    if config.id != id || config.check_parameters().is_err() {
        return Ok(None);
    }
    // A plaintext config is checked by nothing in the cache: it is compared
    // with the storage's (one request), which also confirms the handle.
    let mut confirmed = false;
    let master = match (config.binding(&location), &record.key) {
        (Ok(Binding::Plaintext), None) => {
            if !storage_holds(storage.as_ref(), &record.config) {
                return Ok(None);
            }
            confirmed = true;
            None
        }
        (Ok(Binding::Bound(expected)), Some((name, bytes))) => {
            let Some(password) = password()? else {
                return Ok(None);
            };
            match unwrap_cached_key(&config, &expected, name, bytes, &password) {
                Some(master) => Some((master, name.clone())),
                None => return Ok(None),
            }
        }
        _ => return Ok(None),
    };
    let (Ok(compression), Ok(cipher)) = (config.default_compression(), config.cipher(&location))
    else {
        return Ok(None);
    };
    let gate = Arc::new(CacheGate::new(
        Arc::clone(storage),
        Arc::clone(&cache),
        root,
        record,
        confirmed,
    ));
    if let Some((master, _)) = &master {
        gate.bind_to_key(master.cache_state_key());
    }
    let backend: Arc<dyn Backend> = Arc::new(CachingBackend::with_gate(
        Arc::clone(storage),
        Arc::clone(&cache),
        Arc::clone(&gate),
    ));
    let keys = master.as_ref().map_or_else(Keys::plaintext, |(master, _)| {
        master.keys(cipher.unwrap_or_default())
    });
    Ok(Some(Repository::assemble(
        backend,
        config,
        compression,
        keys,
        master,
        Some((cache, gate)),
    )))
}

/// Whether the storage's config is `config`. A plaintext config in the
/// cache could have been put there by anyone who can write the cache (an
/// encrypted config is authenticated under the key): believed, it would
/// have a backup write plaintext into an encrypted repository. On any other
/// answer the open goes to the storage, which drops a cache whose config
/// differs (`cold_cache`).
fn storage_holds(storage: &dyn Backend, config: &[u8]) -> bool {
    storage
        .read(ObjectKind::Config, "config")
        .is_ok_and(|bytes| bytes == config)
}

/// The master key in the cached key file, if `password` opens it and the
/// cached config's authenticator verifies under it.
fn unwrap_cached_key(
    config: &Config,
    expected: &blake3::Hash,
    name: &str,
    bytes: &[u8],
    password: &str,
) -> Option<MasterKey> {
    let file = keys::parse_key_file(name, bytes).ok()?;
    let master = file.unwrap_key(password.as_bytes(), name).ok()??;
    config
        .verify_authenticator(&master.config_authenticator_key(), expected)
        .ok()?
        .then_some(master)
}
