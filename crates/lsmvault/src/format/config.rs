//! The repository's `config` object: format version, repository id, chunker
//! parameters, pack size, default compression and encryption scheme (JSON).
//!
//! Invariant: a decoded [`Config`] has a version this build reads and valid
//! chunker parameters; everything else that depends on the version (which
//! compression names are allowed) is decided here too.

use serde::{Deserialize, Serialize};

use crate::codec::chunker::ChunkerParams;
use crate::codec::compression::Compression;
use crate::codec::crypto::Cipher;
use crate::error::{Error, Result};

/// Current repository format version (the `version` field of `config`).
/// Version 3 added the optional `parity` field (Reed-Solomon parity objects
/// over groups of packs): a build that knows only version 2 refuses it, so it
/// can never write packs without parity into such a repository. Version 2
/// added compressed blobs; version 1 repositories (never compressed) are
/// still read and written, without compression.
pub const REPOSITORY_VERSION: u32 = 3;
/// The oldest repository format version this build opens.
pub const OLDEST_REPOSITORY_VERSION: u32 = 1;

/// Default target size of a pack file in bytes (16 MiB), `config`'s `pack_size`.
pub const DEFAULT_PACK_SIZE: u32 = 16 * 1024 * 1024;

/// The repository's `config` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Repository format version: 1 (written before compression and
    /// encryption existed) or 2 ([`REPOSITORY_VERSION`]). Checked before the
    /// rest is parsed: any other version is refused as unsupported.
    pub version: u32,
    /// Random id of this repository (64 hex digits).
    pub id: String,
    /// Chunker parameters, fixed at `init`: every chunk boundary, hence all
    /// deduplication, depends on them.
    pub chunker: ChunkerParams,
    /// Target size of pack files in bytes.
    pub pack_size: u32,
    /// Default blob compression: `auto`, `off`, `auto:N` or `zstd:N`
    /// (`none` in format version 1, which has no compression).
    pub compression: String,
    /// Encryption scheme; `null` for a plaintext repository.
    pub encryption: Option<EncryptionConfig>,
    /// Reed-Solomon parity over groups of packs (format version 3); absent
    /// or `null`: no parity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parity: Option<ParityConfig>,
}

/// How many packs a parity group holds and how many parity shards protect
/// it: any `parity_packs` of the group's packs and shards can be lost and
/// rebuilt from the rest (see `docs/reliability.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParityConfig {
    /// Packs per group (1..=[`MAX_PARITY_DATA_PACKS`]); the last group a
    /// command writes may hold fewer.
    pub data_packs: u32,
    /// Parity shards per group (1..=[`MAX_PARITY_SHARDS`]).
    pub parity_packs: u32,
}

/// The most packs one parity group may hold.
pub const MAX_PARITY_DATA_PACKS: u32 = 64;
/// The most parity shards one group may have.
pub const MAX_PARITY_SHARDS: u32 = 16;

impl ParityConfig {
    /// Checks the bounds of both counts.
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_PARITY_DATA_PACKS).contains(&self.data_packs)
            || !(1..=MAX_PARITY_SHARDS).contains(&self.parity_packs)
        {
            return Err(Error::InvalidArgument(format!(
                "parity {}+{}: expected 1..={MAX_PARITY_DATA_PACKS} data packs and \
                 1..={MAX_PARITY_SHARDS} parity shards per group",
                self.data_packs, self.parity_packs
            )));
        }
        Ok(())
    }
}

impl std::str::FromStr for ParityConfig {
    type Err = Error;

    /// `D+P`, e.g. `10+2`.
    fn from_str(text: &str) -> Result<ParityConfig> {
        let invalid =
            || Error::InvalidArgument(format!("parity {text:?}: expected DATA+PARITY, e.g. 10+2"));
        let (data, parity) = text.split_once('+').ok_or_else(invalid)?;
        let config = ParityConfig {
            data_packs: data.trim().parse().map_err(|_| invalid())?,
            parity_packs: parity.trim().parse().map_err(|_| invalid())?,
        };
        config.validate()?;
        Ok(config)
    }
}

impl std::fmt::Display for ParityConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}+{}", self.data_packs, self.parity_packs)
    }
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
    /// The scheme this build writes for `cipher`.
    pub fn with_cipher(cipher: Cipher) -> EncryptionConfig {
        EncryptionConfig {
            cipher: cipher.name().into(),
            kdf: "argon2id".into(),
            blob_ids: "keyed-blake3".into(),
            chunker_gear: "seeded".into(),
        }
    }
}

impl Config {
    /// Parses and checks a `config` object read from the repository at `location`.
    pub fn decode(bytes: &[u8], location: &str) -> Result<Config> {
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        let version: VersionOnly = serde_json::from_slice(bytes)
            .map_err(|error| Error::corrupt("config", error.to_string()))?;
        if !(OLDEST_REPOSITORY_VERSION..=REPOSITORY_VERSION).contains(&version.version) {
            return Err(Error::UnsupportedVersion {
                object: format!("repository {location}"),
                found: version.version,
                supported: REPOSITORY_VERSION,
            });
        }
        let config: Config = serde_json::from_slice(bytes)
            .map_err(|error| Error::corrupt("config", error.to_string()))?;
        config.chunker.validate()?;
        if let Some(parity) = &config.parity {
            if config.version < 3 {
                return Err(Error::corrupt(
                    "config",
                    format!("format version {} has no parity", config.version),
                ));
            }
            parity
                .validate()
                .map_err(|error| Error::corrupt("config", error.to_string()))?;
        }
        Ok(config)
    }

    /// The JSON written to the `config` object.
    pub fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(|error| Error::InvalidArgument(error.to_string()))
    }

    /// The default blob compression this config names (format version 1 has none).
    pub fn default_compression(&self) -> Result<Compression> {
        match (self.version, self.compression.as_str()) {
            (1, "none") => Ok(Compression::Off),
            (1, other) => Err(Error::corrupt(
                "config",
                format!("format version 1 has no compression, but names {other:?}"),
            )),
            (_, text) => text.parse(),
        }
    }

    /// The cipher of an encrypted repository (`None`: plaintext). A scheme
    /// this build does not write exactly is refused, never guessed.
    pub fn cipher(&self, location: &str) -> Result<Option<Cipher>> {
        let Some(scheme) = &self.encryption else {
            return Ok(None);
        };
        Cipher::from_name(&scheme.cipher)
            .filter(|cipher| *scheme == EncryptionConfig::with_cipher(*cipher))
            .map(Some)
            .ok_or_else(|| Error::UnsupportedVersion {
                object: format!("repository {location} (encryption {scheme:?})"),
                found: self.version,
                supported: REPOSITORY_VERSION,
            })
    }
}
