//! Key files of an encrypted repository: adding, listing, removing them and
//! finding the one a password opens.
//!
//! Invariant: the key file a handle was opened with is never removed through
//! that handle, so a repository always keeps at least one key that opens it.
//!
//! A damaged key file (truncated, not JSON, unreadable parameters) locks no
//! one out: opening skips it and tries the others, `key list` shows it as
//! damaged and `key remove` deletes it like any other.

use std::time::Duration;

use serde::Serialize;

use crate::backend::{Backend, ObjectKind};
use crate::codec::crypto::{Cipher, KdfParams, KeyFile, MasterKey, SealKind};
use crate::error::{Error, Result};
use crate::format::config::{Binding, Config};
use crate::repo::lock::{host_name, user_name};
use crate::repo::{random_id, Repository};
use crate::time::Timestamp;

/// A key file as listed by [`Repository::list_keys`].
#[derive(Debug, Clone, Serialize)]
pub struct KeyListing {
    /// The key file's object name under `keys/` (64 random hex digits);
    /// [`Repository::remove_key`] takes it or a prefix of at least 8 digits.
    pub name: String,
    /// When the key file was written; the listing is sorted by it.
    pub created: Timestamp,
    /// Host name of the machine that wrote the key file.
    pub host: String,
    /// Name (or numeric uid) of the user who wrote the key file.
    pub user: String,
    /// Whether this repository handle was opened with it.
    pub current: bool,
    /// Why the key file cannot be used, when it is damaged (it does not
    /// parse); `created`, `host` and `user` are then unknown (epoch, empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub damaged: Option<String>,
}

impl Repository {
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
            &host_name(),
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
            let current = current == Some(object.name.as_str());
            let listing = match read_key_file(self.backend.as_ref(), &object.name) {
                Ok(file) => KeyListing {
                    current,
                    name: object.name,
                    created: Timestamp::parse_or_epoch(&file.created),
                    host: file.host,
                    user: file.user,
                    damaged: None,
                },
                Err(error @ Error::CorruptObject { .. }) => KeyListing {
                    current,
                    name: object.name,
                    created: Timestamp::parse_or_epoch(""),
                    host: String::new(),
                    user: String::new(),
                    damaged: Some(error.to_string()),
                },
                Err(error) => return Err(error),
            };
            keys.push(listing);
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
            .ok_or_else(|| Error::InvalidArgument(format!("no key file matches {name:?}")))?;
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
            self.remember_key(&name);
        }
        Ok(name)
    }

    /// With a metadata cache: the next warm open uses key file `name` (just
    /// written, so read from the cache). A key file that cannot be read
    /// back is not remembered: the next open reads the keys.
    fn remember_key(&self, name: &str) {
        if let Some(gate) = self.cache_gate() {
            if let Ok(bytes) = self.backend.read(ObjectKind::Key, name) {
                gate.key_replaced(name, &bytes);
            }
        }
    }
}

pub(crate) fn write_key_file(backend: &dyn Backend, name: &str, file: &KeyFile) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(file)
        .map_err(|error| Error::InvalidArgument(error.to_string()))?;
    backend.write_if_absent(ObjectKind::Key, name, &bytes)?;
    Ok(())
}

fn read_key_file(backend: &dyn Backend, name: &str) -> Result<KeyFile> {
    parse_key_file(name, &backend.read(ObjectKind::Key, name)?)
}

/// A key file's bytes as a [`KeyFile`] of a well-formed shape.
pub(crate) fn parse_key_file(name: &str, bytes: &[u8]) -> Result<KeyFile> {
    let file: KeyFile = serde_json::from_slice(bytes)
        .map_err(|error| Error::corrupt(ObjectKind::Key.describe(name), error.to_string()))?;
    file.check_form(name)?;
    Ok(file)
}

/// Tries every key file; returns the master key and the name of the file that
/// opened. A key file that cannot be parsed or unwrapped (damaged, of an
/// unknown version) is skipped, so one bad file never locks the owner out;
/// if no key opens, the error names the skipped ones.
///
/// With a bound config (version 3), a master key under which the config's
/// authenticator does not verify is skipped like one that opens nothing; if
/// the password opens keys but none verifies the config, the config was
/// altered (or belongs to another repository): [`Error::ConfigNotAuthentic`].
/// The cipher the config names is believed only after that.
///
/// A key that unwraps (and verifies the config) but opens none of a few of
/// the repository's sealed objects (a key file copied from another
/// repository with the same password, with that repository's config) is
/// used only if no other key does better: its samples may all be damaged
/// instead.
pub(crate) fn unlock_master_key(
    backend: &dyn Backend,
    password: &str,
    config: &Config,
    binding: Binding,
) -> Result<(MasterKey, String)> {
    let location = backend.location();
    let mut damaged = Vec::new();
    let mut samples: Option<Vec<(SealKind, Vec<u8>)>> = None;
    let mut unproven = None;
    let mut unauthentic = 0usize;
    for object in backend.list(ObjectKind::Key)? {
        let unwrapped = read_key_file(backend, &object.name)
            .and_then(|file| file.unwrap_key(password.as_bytes(), &object.name));
        match unwrapped {
            Ok(Some(master)) => {
                if let Binding::Bound(expected) = &binding {
                    if !config.verify_authenticator(&master.config_authenticator_key(), expected)? {
                        unauthentic += 1;
                        continue;
                    }
                }
                let cipher = config.cipher(&location)?.unwrap_or_default();
                if samples.is_none() {
                    samples = Some(sealed_samples(backend)?);
                }
                if opens_any(&master, cipher, samples.as_deref().unwrap_or_default()) {
                    return Ok((master, object.name));
                }
                unproven.get_or_insert((master, object.name));
            }
            Ok(None) => {}
            // Removed between list and read (a concurrent `key remove`).
            Err(Error::Backend(crate::backend::Error::NotFound { .. })) => {}
            Err(Error::Backend(error)) => return Err(Error::Backend(error)),
            Err(_) => damaged.push(object.name),
        }
    }
    if let Some(found) = unproven {
        return Ok(found);
    }
    if unauthentic > 0 {
        return Err(Error::ConfigNotAuthentic {
            location,
            reason: format!(
                "its authenticator does not verify under the master key of the {unauthentic} key(s) this password opens"
            ),
        });
    }
    Err(Error::WrongPassword {
        location,
        damaged_keys: damaged,
    })
}

/// How many sealed objects a candidate master key is tried on.
const SAMPLES: usize = 3;

/// The sealed objects that tell one repository's master key from another's
/// (with the seal each is opened with): snapshot files, then index files.
pub(crate) const KEY_PROOF_OBJECTS: [(ObjectKind, SealKind); 2] = [
    (ObjectKind::Snapshot, SealKind::Snapshot),
    (ObjectKind::Index, SealKind::Index),
];

/// A few sealed objects of the repository (snapshot files, then index
/// files), to tell the master key of this repository from another's.
fn sealed_samples(backend: &dyn Backend) -> Result<Vec<(SealKind, Vec<u8>)>> {
    let mut samples = Vec::new();
    for (kind, seal) in KEY_PROOF_OBJECTS {
        for object in backend.list(kind)? {
            if samples.len() >= SAMPLES {
                return Ok(samples);
            }
            // An unreadable sample proves nothing either way: skip it.
            if let Ok(bytes) = backend.read(kind, &object.name) {
                samples.push((seal, bytes));
            }
        }
    }
    Ok(samples)
}

/// Whether `master` opens any of the samples (true when there are none: a
/// new repository has nothing to tell keys apart by).
fn opens_any(master: &MasterKey, cipher: Cipher, samples: &[(SealKind, Vec<u8>)]) -> bool {
    let keys = master.keys(cipher);
    samples.is_empty()
        || samples
            .iter()
            .any(|(kind, bytes)| keys.open(*kind, bytes.as_slice(), String::new).is_ok())
}
