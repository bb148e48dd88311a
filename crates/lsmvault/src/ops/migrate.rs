//! `migrate`: brings an encrypted repository of format version 2 to version
//! 3 by binding its `config` to the master key (the `authenticator`, see
//! `docs/format.md`). Version 2 configs are not authenticated, so every other
//! command refuses such a repository until it is migrated.
//!
//! Migration authenticates what the config says as it is: it first checks
//! that the config is consistent with the repository (the master key, with
//! the cipher the config names, opens its snapshot and index files), then
//! replaces `config` in one atomic step ([`Backend::replace_config`]) under
//! the exclusive lock. An interruption leaves the version 2 config (migrate
//! again) or the version 3 one (done), never a mix.
//!
//! [`Backend::replace_config`]: crate::backend::Backend::replace_config

use serde::Serialize;

use crate::backend::ObjectKind;
use crate::error::{Error, Result};
use crate::format::config::{Binding, Config};
use crate::repo::keys::KEY_PROOF_OBJECTS;
use crate::repo::lock::LockKind;
use crate::repo::Repository;

/// What [`Repository::migrate`] did.
#[derive(Debug, Clone, Serialize)]
pub struct MigrateReport {
    /// The format version the config had.
    pub from_version: u32,
    /// The format version it has now (unchanged when nothing was to do).
    pub to_version: u32,
    /// Whether `config` was replaced.
    pub migrated: bool,
    /// Why nothing was done, when nothing was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nothing_to_do: Option<String>,
    /// The config as it is now (what was bound, after a migration).
    pub config: Config,
    /// Snapshot and index files the master key was tried on.
    pub objects_checked: usize,
    /// Those it opened.
    pub objects_opened: usize,
    /// Those it did not open (damaged, or not this repository's), by name.
    pub objects_not_opened: Vec<String>,
}

impl Repository {
    /// Binds the config of an encrypted version 2 repository to its master
    /// key (open the handle with [`Repository::open_for_migration`]). A
    /// plaintext or already bound repository is left as it is.
    ///
    /// Refuses when the master key opens none of the repository's snapshot
    /// and index files (the config names the wrong cipher, or the key and
    /// config come from another repository), or when `config` changed since
    /// the handle was opened.
    pub fn migrate(&mut self) -> Result<MigrateReport> {
        let _lock = self.lock(LockKind::Exclusive, "migrate")?;
        let location = self.backend().location();
        let current = Config::decode(
            &self.backend().read(ObjectKind::Config, "config")?,
            &location,
        )?;
        if current != *self.config() {
            return Err(Error::InvalidArgument(
                "the repository's config changed since it was opened (another migrate?); run the command again".into(),
            ));
        }
        let unchanged = |reason: &str| MigrateReport {
            from_version: current.version,
            to_version: current.version,
            migrated: false,
            nothing_to_do: Some(reason.to_string()),
            config: current.clone(),
            objects_checked: 0,
            objects_opened: 0,
            objects_not_opened: Vec::new(),
        };
        match current.binding(&location)? {
            Binding::Plaintext => {
                return Ok(unchanged(
                    "the repository is not encrypted: its config has nothing to be bound to",
                ))
            }
            Binding::Bound(_) => {
                return Ok(unchanged("the config is already bound to the master key"))
            }
            Binding::Unbound => {}
        }
        let (checked, not_opened) = self.sealed_objects_not_opened()?;
        if checked > 0 && not_opened.len() == checked {
            return Err(Error::ConfigNotAuthentic {
                location,
                reason: format!(
                    "the master key opens none of the repository's {checked} snapshot and index files with the cipher the config names, so the config is not this repository's; it was not bound"
                ),
            });
        }
        let bound = self
            .bound_config()?
            .ok_or_else(|| Error::InvalidArgument("the repository is not encrypted".into()))?;
        self.replace_config(bound)?;
        Ok(MigrateReport {
            from_version: current.version,
            to_version: self.config().version,
            migrated: true,
            nothing_to_do: None,
            config: self.config().clone(),
            objects_checked: checked,
            objects_opened: checked - not_opened.len(),
            objects_not_opened: not_opened,
        })
    }

    /// Tries to open every snapshot and index file with this handle's keys:
    /// how many there are and the names of those that do not open.
    fn sealed_objects_not_opened(&self) -> Result<(usize, Vec<String>)> {
        let mut checked = 0;
        let mut not_opened = Vec::new();
        for (kind, seal) in KEY_PROOF_OBJECTS {
            for object in self.backend().list(kind)? {
                let bytes = match self.backend().read(kind, &object.name) {
                    Ok(bytes) => bytes,
                    // Deleted since listed (nothing runs beside the
                    // exclusive lock but a crashed command's leftovers).
                    Err(error) if error.is_not_found() => continue,
                    Err(error) => return Err(error.into()),
                };
                checked += 1;
                let description = || kind.describe(&object.name);
                if self
                    .keys()
                    .open(seal, bytes.as_slice(), description)
                    .is_err()
                {
                    not_opened.push(description());
                }
            }
        }
        Ok((checked, not_opened))
    }
}
