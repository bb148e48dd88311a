//! Encryption: key files, the master key, sealing objects, keyed blob ids.
//!
//! A repository is either plaintext or encrypted, fixed at `init`. In an
//! encrypted repository:
//! - a random 64-byte master key holds the AEAD key (32 bytes) and the blob-id
//!   key (32 bytes); the chunker's gear seed is derived from the master key;
//! - each key file (`keys/<random id>`, JSON) wraps the master key with a key
//!   derived from a password by argon2id (parameters and salt in the file);
//!   several key files may wrap the same master key;
//! - blobs, pack headers, index files and snapshot files are sealed with
//!   XChaCha20-Poly1305 under a fresh random 24-byte nonce:
//!   `nonce (24) | ciphertext | tag (16)`, with the object kind as associated
//!   data so a sealed object cannot pass for one of another kind;
//! - blob ids are keyed BLAKE3 of the plaintext, so ids reveal nothing about
//!   content to someone without the key; whole-file digests use the same key.
//!
//! [`Keys::plaintext`] makes every operation the identity (plain BLAKE3 ids,
//! no sealing), so the rest of the code has one path for both kinds.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::Id;

/// Bytes added to every sealed object: nonce and tag.
pub const SEAL_OVERHEAD: usize = 24 + 16;
/// Key file format version.
pub const KEY_FILE_VERSION: u32 = 1;
/// Default time one key derivation should take.
pub const DEFAULT_KDF_TARGET: Duration = Duration::from_millis(500);
/// argon2id memory (KiB): 32 MiB keeps every command's peak memory modest.
const KDF_MEMORY_KIB: u32 = 32 * 1024;

/// What an object is, bound into its seal as associated data.
#[derive(Debug, Clone, Copy)]
pub enum SealKind {
    Blob,
    PackHeader,
    Index,
    Snapshot,
    WalRecord,
    MasterKey,
}

impl SealKind {
    fn label(self) -> &'static [u8] {
        match self {
            SealKind::Blob => b"lsmvault blob v1",
            SealKind::PackHeader => b"lsmvault pack header v1",
            SealKind::Index => b"lsmvault index v1",
            SealKind::Snapshot => b"lsmvault snapshot v1",
            SealKind::WalRecord => b"lsmvault wal record v1",
            SealKind::MasterKey => b"lsmvault master key v1",
        }
    }
}

/// The secrets of an open repository (or none, for a plaintext one).
#[derive(Clone)]
pub struct Keys {
    cipher: Option<Arc<XChaCha20Poly1305>>,
    id_key: Option<[u8; 32]>,
    chunker_seed: u64,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Keys")
            .field("encrypted", &self.is_encrypted())
            .finish()
    }
}

/// The master key's material.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    bytes: [u8; 64],
}

impl MasterKey {
    pub fn generate() -> Result<MasterKey> {
        let mut bytes = [0u8; 64];
        random_bytes(&mut bytes)?;
        Ok(MasterKey { bytes })
    }

    pub fn keys(&self) -> Keys {
        let mut encryption = [0u8; 32];
        encryption.copy_from_slice(&self.bytes[..32]);
        let mut id_key = [0u8; 32];
        id_key.copy_from_slice(&self.bytes[32..]);
        let seed_material = blake3::derive_key("lsmvault chunker gear seed v1", &self.bytes);
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&seed_material[..8]);
        Keys {
            cipher: Some(Arc::new(XChaCha20Poly1305::new(&encryption.into()))),
            id_key: Some(id_key),
            chunker_seed: u64::from_le_bytes(seed),
        }
    }
}

/// Fills `bytes` from the operating system's random source.
pub fn random_bytes(bytes: &mut [u8]) -> Result<()> {
    getrandom::getrandom(bytes).map_err(|error| {
        Error::io(
            "reading the system's random source",
            std::io::Error::other(error.to_string()),
        )
    })
}

impl Keys {
    /// No encryption: plain BLAKE3 ids, objects stored as they are.
    pub fn plaintext() -> Keys {
        Keys {
            cipher: None,
            id_key: None,
            chunker_seed: 0,
        }
    }

    pub fn is_encrypted(&self) -> bool {
        self.cipher.is_some()
    }

    /// The FastCDC gear seed (0 for plaintext repositories).
    pub fn chunker_seed(&self) -> u64 {
        self.chunker_seed
    }

    /// The id of a blob's raw content.
    pub fn blob_id(&self, raw: &[u8]) -> Id {
        match &self.id_key {
            Some(key) => Id(*blake3::keyed_hash(key, raw).as_bytes()),
            None => Id::of(raw),
        }
    }

    /// An incremental hasher producing [`Keys::blob_id`] of what it is fed.
    pub fn hasher(&self) -> blake3::Hasher {
        match &self.id_key {
            Some(key) => blake3::Hasher::new_keyed(key),
            None => blake3::Hasher::new(),
        }
    }

    /// Seals `plaintext` (returns it unchanged, uncopied, without encryption).
    pub fn seal<'a>(&self, kind: SealKind, plaintext: &'a [u8]) -> Result<Cow<'a, [u8]>> {
        let Some(cipher) = &self.cipher else {
            return Ok(Cow::Borrowed(plaintext));
        };
        let mut nonce = [0u8; 24];
        random_bytes(&mut nonce)?;
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: kind.label(),
                },
            )
            .map_err(|_| Error::InvalidArgument("encryption failed".into()))?;
        let mut out = Vec::with_capacity(SEAL_OVERHEAD + plaintext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(Cow::Owned(out))
    }

    /// Opens a sealed object; any change to it is an authentication failure
    /// naming `object`. Without encryption the input is returned as it came
    /// (borrowed or owned: never copied).
    pub fn open<'a>(
        &self,
        kind: SealKind,
        sealed: impl Into<Cow<'a, [u8]>>,
        object: impl Fn() -> String,
    ) -> Result<Cow<'a, [u8]>> {
        let sealed = sealed.into();
        let Some(cipher) = &self.cipher else {
            return Ok(sealed);
        };
        if sealed.len() < SEAL_OVERHEAD {
            return Err(Error::AuthenticationFailed { object: object() });
        }
        let (nonce, ciphertext) = sealed.split_at(24);
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: kind.label(),
                },
            )
            .map(Cow::Owned)
            .map_err(|_| Error::AuthenticationFailed { object: object() })
    }
}

/// argon2id parameters, stored in each key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl KdfParams {
    /// Parameters taking about `target` on this machine (at least 1 iteration).
    pub fn tuned(target: Duration) -> Result<KdfParams> {
        let probe = KdfParams {
            memory_kib: KDF_MEMORY_KIB,
            iterations: 1,
            parallelism: 1,
        };
        let started = Instant::now();
        probe.derive(b"probe", &[0u8; 16])?;
        let one = started.elapsed().max(Duration::from_micros(1));
        let iterations = (target.as_secs_f64() / one.as_secs_f64())
            .floor()
            .clamp(1.0, 100.0) as u32;
        Ok(KdfParams {
            iterations,
            ..probe
        })
    }

    fn derive(&self, password: &[u8], salt: &[u8]) -> Result<[u8; 32]> {
        // A hostile key file must not make every command allocate gigabytes or
        // spin for hours: refuse parameters far beyond what `tuned` produces.
        if self.memory_kib > 1024 * 1024 || self.iterations > 1000 || self.parallelism > 64 {
            return Err(Error::corrupt(
                "key file",
                format!("argon2 parameters out of range: {self:?}"),
            ));
        }
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
            .map_err(|error| Error::corrupt("key file", format!("argon2 parameters: {error}")))?;
        let mut out = [0u8; 32];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(password, salt, &mut out)
            .map_err(|error| Error::corrupt("key file", format!("argon2: {error}")))?;
        Ok(out)
    }
}

/// A key file: the master key wrapped under a password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyFile {
    pub version: u32,
    pub created: String,
    pub host: String,
    pub user: String,
    pub kdf: String,
    pub kdf_params: KdfParams,
    /// Hex salt (16 bytes).
    pub salt: String,
    /// Hex of the sealed master key.
    pub wrapped: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str, object: &str) -> Result<Vec<u8>> {
    let digits = text.as_bytes();
    if digits.len() % 2 != 0 {
        return Err(Error::corrupt(object, "odd number of hex digits"));
    }
    digits
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| Error::corrupt(object, "not hex"))
        })
        .collect()
}

impl KeyFile {
    /// Wraps `master` under `password`.
    pub fn wrap(
        master: &MasterKey,
        password: &[u8],
        params: KdfParams,
        host: &str,
        user: &str,
    ) -> Result<KeyFile> {
        let mut salt = [0u8; 16];
        random_bytes(&mut salt)?;
        let wrapping = Keys {
            cipher: Some(Arc::new(XChaCha20Poly1305::new(
                &params.derive(password, &salt)?.into(),
            ))),
            id_key: None,
            chunker_seed: 0,
        };
        Ok(KeyFile {
            version: KEY_FILE_VERSION,
            created: crate::snapshot::format_time(std::time::SystemTime::now()),
            host: host.to_string(),
            user: user.to_string(),
            kdf: "argon2id".to_string(),
            kdf_params: params,
            salt: hex(&salt),
            wrapped: hex(&wrapping.seal(SealKind::MasterKey, &master.bytes)?),
        })
    }

    /// Unwraps the master key; `None` when the password does not fit.
    pub fn unwrap_key(&self, password: &[u8], name: &str) -> Result<Option<MasterKey>> {
        let object = format!("key file {name}");
        if self.version != KEY_FILE_VERSION || self.kdf != "argon2id" {
            return Err(Error::UnsupportedVersion {
                object,
                found: self.version,
                supported: KEY_FILE_VERSION,
            });
        }
        let salt = unhex(&self.salt, &object)?;
        let wrapped = unhex(&self.wrapped, &object)?;
        let wrapping = Keys {
            cipher: Some(Arc::new(XChaCha20Poly1305::new(
                &self.kdf_params.derive(password, &salt)?.into(),
            ))),
            id_key: None,
            chunker_seed: 0,
        };
        match wrapping.open(SealKind::MasterKey, wrapped.as_slice(), || object.clone()) {
            Ok(bytes) if bytes.len() == 64 => {
                let mut master = [0u8; 64];
                master.copy_from_slice(&bytes);
                Ok(Some(MasterKey { bytes: master }))
            }
            Ok(_) => Err(Error::corrupt(object, "wrapped key has the wrong length")),
            Err(_) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fast() -> KdfParams {
        KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn key_file_round_trip_and_wrong_password() {
        let master = MasterKey::generate().unwrap();
        let file = KeyFile::wrap(&master, b"correct horse", fast(), "h", "u").unwrap();
        let json = serde_json::to_string(&file).unwrap();
        let file: KeyFile = serde_json::from_str(&json).unwrap();
        assert!(file.unwrap_key(b"correct horse", "k").unwrap() == Some(master.clone()));
        assert!(file.unwrap_key(b"wrong", "k").unwrap().is_none());
    }

    #[test]
    fn keyed_ids_differ_from_plain_and_between_repositories() {
        let first = MasterKey::generate().unwrap().keys();
        let second = MasterKey::generate().unwrap().keys();
        let plain = Keys::plaintext();
        assert_eq!(plain.blob_id(b"x"), Id::of(b"x"));
        assert_ne!(first.blob_id(b"x"), plain.blob_id(b"x"));
        assert_ne!(first.blob_id(b"x"), second.blob_id(b"x"));
        let mut hasher = first.hasher();
        hasher.update(b"x");
        assert_eq!(Id(*hasher.finalize().as_bytes()), first.blob_id(b"x"));
        assert_ne!(first.chunker_seed(), 0);
    }

    #[test]
    fn seals_bind_their_kind() {
        let keys = MasterKey::generate().unwrap().keys();
        let sealed = keys.seal(SealKind::Index, b"index").unwrap();
        assert!(matches!(
            keys.open(SealKind::Snapshot, sealed.as_ref(), || "x".into()),
            Err(Error::AuthenticationFailed { .. })
        ));
        assert_eq!(
            keys.open(SealKind::Index, sealed.as_ref(), || "x".into())
                .unwrap()
                .as_ref(),
            b"index"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn seal_round_trip_and_any_flip_fails(data in proptest::collection::vec(any::<u8>(), 0..2000), flip in any::<usize>()) {
            let keys = MasterKey::generate().unwrap().keys();
            let sealed = keys.seal(SealKind::Blob, &data).unwrap();
            prop_assert_eq!(sealed.len(), data.len() + SEAL_OVERHEAD);
            let opened = keys.open(SealKind::Blob, sealed.as_ref(), || "blob".into()).unwrap().into_owned();
            prop_assert_eq!(&opened, &data);
            let mut tampered = sealed.into_owned();
            let position = flip % tampered.len();
            tampered[position] ^= 0x01;
            let failed = matches!(
                keys.open(SealKind::Blob, tampered.as_slice(), || "blob".into()),
                Err(Error::AuthenticationFailed { .. })
            );
            prop_assert!(failed);
            // Plaintext keys are the identity.
            let plain = Keys::plaintext().seal(SealKind::Blob, &data).unwrap().into_owned();
            prop_assert_eq!(plain, data);
        }
    }
}
