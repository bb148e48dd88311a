//! The repository's `config` object: format version, repository id, chunker
//! parameters, pack size, default compression and encryption scheme (JSON).
//!
//! Invariant: a decoded [`Config`] has a version this build reads and no
//! field this build does not know (`deny_unknown_fields`, nested structs
//! included), so nothing in the JSON can escape the authenticator; everything
//! that depends on the version (which compression names are allowed, whether
//! an authenticator is required) is decided here too.
//!
//! Authentication (format version 3): the `authenticator` of an encrypted
//! repository's config is keyed BLAKE3, under a key derived from the master
//! key, over the canonical encoding of the parsed config with the
//! authenticator absent ([`Config::canonical_bytes`]: compact JSON of the
//! struct, fields in declaration order). Re-encoding the parsed struct makes
//! whitespace and key order irrelevant and covers every field of the struct,
//! present and future, without naming any; unknown fields are refused rather
//! than ignored, so they cannot ride along unauthenticated.
//!
//! A field added later must be optional and skipped when absent
//! (`#[serde(default, skip_serializing_if = "Option::is_none")]`): the
//! canonical bytes of a config written before it existed then stay the
//! same, so its authenticator still verifies (`config_authenticator_is_pinned`
//! fails otherwise).

use serde::{Deserialize, Serialize};

use crate::codec::chunker::ChunkerParams;
use crate::codec::compression::Compression;
use crate::codec::crypto::Cipher;
use crate::error::{Error, Result};

/// Current repository format version (the `version` field of `config`).
/// Version 3 binds an encrypted repository's config to its master key (the
/// `authenticator`) and added the optional `parity` field (Reed-Solomon parity
/// objects over groups of packs: a build that knows only version 2 refuses it, so
/// it can never write packs without parity into such a repository); version 2
/// added compressed blobs and encryption; version 1 repositories (never
/// compressed) are still read and written, without compression. Plaintext
/// version 2 repositories open as before; encrypted version 2 repositories must
/// be migrated (`Repository::migrate`) first.
pub const REPOSITORY_VERSION: u32 = 3;
/// The first version whose encrypted configs carry an authenticator.
pub const AUTHENTICATED_VERSION: u32 = 3;
/// The oldest repository format version this build opens.
pub const OLDEST_REPOSITORY_VERSION: u32 = 1;

/// Default target size of a pack file in bytes (16 MiB), `config`'s `pack_size`.
pub const DEFAULT_PACK_SIZE: u32 = 16 * 1024 * 1024;

/// The repository's `config` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Repository format version: 1 (written before compression and
    /// encryption existed), 2 (compression, encryption) or 3
    /// ([`REPOSITORY_VERSION`], authenticated config). Checked before the
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
    /// Keyed BLAKE3 (64 hex digits) of [`Config::canonical_bytes`] under the
    /// master key's config key: present exactly in encrypted repositories of
    /// version 3 and later. Must stay the last field (it is not part of the
    /// bytes it authenticates, whatever its position).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticator: Option<String>,
}

/// How a decoded config stands towards the master key ([`Config::binding`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// A plaintext repository: nothing secret to bind the config to.
    Plaintext,
    /// An encrypted repository of version 2, written before configs were
    /// authenticated: opened only to be migrated.
    Unbound,
    /// An encrypted repository whose config carries this authenticator.
    Bound(blake3::Hash),
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
#[serde(deny_unknown_fields)]
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
        serde_json::from_slice(bytes).map_err(|error| Error::corrupt("config", error.to_string()))
    }

    /// Checks the parameters the rest of the build relies on (chunker
    /// ranges, the compression name); done after authentication, so that an
    /// edit of an encrypted repository's config is reported as such.
    pub fn check_parameters(&self) -> Result<()> {
        self.chunker.validate()?;
        if let Some(parity) = &self.parity {
            if self.version < 3 {
                return Err(Error::corrupt(
                    "config",
                    format!("format version {} has no parity", self.version),
                ));
            }
            parity
                .validate()
                .map_err(|error| Error::corrupt("config", error.to_string()))?;
        }
        self.default_compression().map(|_| ())
    }

    /// Where this config stands towards the master key; a combination no
    /// build writes (an authenticator in a plaintext or version 2 config, an
    /// encrypted version 1 or authenticator-less version 3 config) is an
    /// edit, refused as [`Error::ConfigNotAuthentic`].
    pub fn binding(&self, location: &str) -> Result<Binding> {
        let altered = |reason: &str| Error::ConfigNotAuthentic {
            location: location.to_string(),
            reason: reason.to_string(),
        };
        match (&self.encryption, &self.authenticator) {
            (None, None) => Ok(Binding::Plaintext),
            (None, Some(_)) => Err(altered(
                "it says plaintext but carries an authenticator (its encryption section was removed)",
            )),
            (Some(_), _) if self.version < 2 => {
                Err(altered("format version 1 has no encryption, yet it names one"))
            }
            (Some(_), None) if self.version < AUTHENTICATED_VERSION => Ok(Binding::Unbound),
            (Some(_), None) => Err(altered("its authenticator is missing")),
            (Some(_), Some(_)) if self.version < AUTHENTICATED_VERSION => Err(altered(
                "it carries an authenticator but says format version 2 (its version was lowered)",
            )),
            (Some(_), Some(text)) => blake3::Hash::from_hex(text)
                .map(Binding::Bound)
                .map_err(|_| altered("its authenticator is not 64 hex digits")),
        }
    }

    /// The bytes the authenticator covers: the compact JSON of this config
    /// with the authenticator absent. Every field of the struct is in it.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>> {
        let unauthenticated = Config {
            authenticator: None,
            ..self.clone()
        };
        serde_json::to_vec(&unauthenticated)
            .map_err(|error| Error::InvalidArgument(error.to_string()))
    }

    /// The authenticator of this config under `key` (the master key's
    /// config key, `MasterKey::config_authenticator_key`).
    pub fn compute_authenticator(&self, key: &[u8; 32]) -> Result<blake3::Hash> {
        Ok(blake3::keyed_hash(key, &self.canonical_bytes()?))
    }

    /// Whether `expected` is this config's authenticator under `key`
    /// (constant-time comparison).
    pub fn verify_authenticator(&self, key: &[u8; 32], expected: &blake3::Hash) -> Result<bool> {
        Ok(self.compute_authenticator(key)? == *expected)
    }

    /// This config as version [`REPOSITORY_VERSION`], bound to `key`.
    pub fn bound_to(&self, key: &[u8; 32]) -> Result<Config> {
        let mut bound = Config {
            version: REPOSITORY_VERSION,
            authenticator: None,
            ..self.clone()
        };
        bound.authenticator = Some(bound.compute_authenticator(key)?.to_hex().to_string());
        Ok(bound)
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

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7u8; 32];

    fn encrypted_config() -> Config {
        Config {
            version: REPOSITORY_VERSION,
            id: "ab".repeat(32),
            chunker: ChunkerParams::default(),
            pack_size: DEFAULT_PACK_SIZE,
            compression: "auto".into(),
            encryption: Some(EncryptionConfig::with_cipher(Cipher::Aes256GcmSubkey)),
            parity: None,
            authenticator: None,
        }
    }

    fn bound_config() -> Config {
        encrypted_config().bound_to(&KEY).unwrap()
    }

    fn verifies(config: &Config) -> bool {
        match config.binding("test") {
            Ok(Binding::Bound(expected)) => config.verify_authenticator(&KEY, &expected).unwrap(),
            _ => false,
        }
    }

    /// The canonical bytes are spelled out by hand and the authenticator is
    /// BLAKE3 keyed with the key over exactly them (pinned): a change of the
    /// encoding, the field order or the construction fails here.
    #[test]
    fn config_authenticator_is_pinned() {
        let canonical = format!(
            "{{\"version\":3,\"id\":\"{}\",\"chunker\":{{\"algorithm\":\"fastcdc-v2020\",\
             \"min_size\":262144,\"avg_size\":1048576,\"max_size\":4194304,\"normalization\":1}},\
             \"pack_size\":16777216,\"compression\":\"auto\",\"encryption\":{{\"cipher\":\
             \"aes-256-gcm-subkey\",\"kdf\":\"argon2id\",\"blob_ids\":\"keyed-blake3\",\
             \"chunker_gear\":\"seeded\"}}}}",
            "ab".repeat(32)
        );
        let config = bound_config();
        assert_eq!(
            String::from_utf8(config.canonical_bytes().unwrap()).unwrap(),
            canonical
        );
        let expected = blake3::keyed_hash(&KEY, canonical.as_bytes());
        assert_eq!(config.authenticator.as_deref(), Some(&*expected.to_hex()));
        assert_eq!(config.authenticator.as_deref(), Some(PINNED_AUTHENTICATOR));
        assert!(verifies(&config));
    }

    #[test]
    fn the_parity_setting_is_bound_and_cannot_be_edited_or_dropped() {
        let with_parity = Config {
            parity: Some(ParityConfig {
                data_packs: 10,
                parity_packs: 2,
            }),
            ..encrypted_config()
        }
        .bound_to(&KEY)
        .unwrap();
        assert!(verifies(&with_parity));
        let canonical = String::from_utf8(with_parity.canonical_bytes().unwrap()).unwrap();
        assert!(canonical.contains("\"parity\":{\"data_packs\":10,\"parity_packs\":2}"));
        for edited in [
            Some(ParityConfig {
                data_packs: 10,
                parity_packs: 1,
            }),
            None,
        ] {
            let config = Config {
                parity: edited,
                ..with_parity.clone()
            };
            assert!(!verifies(&config), "{edited:?} passed authentication");
        }
    }

    const PINNED_AUTHENTICATOR: &str =
        "39b8d085f5bc1e4c77b918f691a7e8733979f3310cf4d496aaa19fe8d7216d90";

    #[test]
    fn whitespace_and_key_order_do_not_matter() {
        let config = bound_config();
        let pretty = config.encode().unwrap();
        let compact = serde_json::to_vec(&config).unwrap();
        let mut reordered: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&compact).unwrap();
        let id = reordered.remove("id").unwrap();
        reordered.insert("id".into(), id);
        let reordered = serde_json::to_vec(&reordered).unwrap();
        for bytes in [pretty, compact, reordered] {
            assert!(verifies(&Config::decode(&bytes, "test").unwrap()));
        }
    }

    /// Every leaf of the JSON, found by walking it (no field is named, so a
    /// field added later is covered too), changed to another value of its
    /// type: the config either no longer decodes or no longer verifies.
    #[test]
    fn an_edit_of_any_field_fails_authentication() {
        fn leaves(value: &serde_json::Value, path: String, out: &mut Vec<String>) {
            match value {
                serde_json::Value::Object(map) => {
                    for (key, child) in map {
                        leaves(child, format!("{path}/{key}"), out);
                    }
                }
                _ => out.push(path),
            }
        }
        let original: serde_json::Value =
            serde_json::from_slice(&bound_config().encode().unwrap()).unwrap();
        let mut paths = Vec::new();
        leaves(&original, String::new(), &mut paths);
        assert!(paths.len() >= 13, "{paths:?}");
        for path in paths {
            let mut edited = original.clone();
            let leaf = edited.pointer_mut(&path).unwrap();
            *leaf = match leaf.take() {
                serde_json::Value::Number(number) => (number.as_u64().unwrap() + 1).into(),
                serde_json::Value::String(text) if path == "/authenticator" => {
                    let flipped = if text.starts_with('0') { "1" } else { "0" };
                    format!("{flipped}{}", &text[1..]).into()
                }
                serde_json::Value::String(_) if path == "/encryption/cipher" => {
                    "xchacha20-poly1305".into()
                }
                serde_json::Value::String(text) => format!("{text}x").into(),
                other => panic!("{path}: unexpected leaf {other}"),
            };
            let bytes = serde_json::to_vec(&edited).unwrap();
            if let Ok(config) = Config::decode(&bytes, "test") {
                assert!(!verifies(&config), "{path} edited and still verifies");
            }
        }
        // Dropping the encryption section or the authenticator is an edit too.
        for (field, replacement) in [
            ("encryption", serde_json::Value::Null),
            ("authenticator", serde_json::Value::Null),
        ] {
            let mut edited = original.clone();
            edited[field] = replacement;
            let config = Config::decode(&serde_json::to_vec(&edited).unwrap(), "test").unwrap();
            assert!(
                matches!(
                    config.binding("test"),
                    Err(Error::ConfigNotAuthentic { .. })
                ),
                "{field} dropped"
            );
        }
    }

    #[test]
    fn unknown_fields_are_refused_not_ignored() {
        let original: serde_json::Value =
            serde_json::from_slice(&bound_config().encode().unwrap()).unwrap();
        for pointer in ["", "/chunker", "/encryption"] {
            let mut edited = original.clone();
            edited
                .pointer_mut(pointer)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .insert("smuggled".into(), 1.into());
            let error = Config::decode(&serde_json::to_vec(&edited).unwrap(), "test").unwrap_err();
            assert!(error.to_string().contains("smuggled"), "{pointer}: {error}");
        }
    }

    #[test]
    fn the_binding_of_each_version_and_scheme() {
        let mut plaintext = encrypted_config();
        plaintext.encryption = None;
        assert_eq!(plaintext.binding("test").unwrap(), Binding::Plaintext);
        plaintext.version = 2;
        assert_eq!(plaintext.binding("test").unwrap(), Binding::Plaintext);
        let mut unbound = encrypted_config();
        unbound.version = 2;
        assert_eq!(unbound.binding("test").unwrap(), Binding::Unbound);
        let refused = |config: &Config| {
            matches!(
                config.binding("test"),
                Err(Error::ConfigNotAuthentic { .. })
            )
        };
        // Encrypted version 3 without an authenticator; version 1 naming encryption.
        assert!(refused(&encrypted_config()));
        unbound.version = 1;
        assert!(refused(&unbound));
        // An authenticator in a version 2 or plaintext config.
        let mut lowered = bound_config();
        lowered.version = 2;
        assert!(refused(&lowered));
        let mut stripped = bound_config();
        stripped.encryption = None;
        assert!(refused(&stripped));
        let mut malformed = bound_config();
        malformed.authenticator = Some("not hex".into());
        assert!(refused(&malformed));
    }
}
