//! Encryption: key files, the master key, sealing objects, keyed blob ids.
//!
//! A repository is either plaintext or encrypted, fixed at `init`. In an
//! encrypted repository:
//! - a random 64-byte master key holds the AEAD key (32 bytes) and the blob-id
//!   key (32 bytes); the chunker's gear seed is derived from the master key;
//! - each key file (`keys/<random id>`, JSON) wraps the master key with a key
//!   derived from a password by argon2id (parameters and salt in the file);
//!   several key files may wrap the same master key;
//! - blobs, pack headers, index files and snapshot files are sealed with the
//!   repository's [`Cipher`] under a fresh random 24-byte nonce:
//!   `nonce (24) | ciphertext | tag (16)`, with the object kind as associated
//!   data so a sealed object cannot pass for one of another kind. With
//!   AES-256-GCM (the default) the first 12 nonce bytes select a per-object
//!   subkey (keyed BLAKE3 of them under the AEAD key) and the last 12 are the
//!   GCM nonce, so random nonces never approach GCM's 2^32-message limit;
//! - blob ids are keyed BLAKE3 of the plaintext, so ids reveal nothing about
//!   content to someone without the key; whole-file digests use the same key.
//!
//! [`Keys::plaintext`] makes every operation the identity (plain BLAKE3 ids,
//! no sealing), so the rest of the code has one path for both kinds.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::Tag;
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::Id;

/// Bytes added to every sealed object: nonce and tag.
pub const SEAL_OVERHEAD: usize = NONCE_LENGTH + TAG_LENGTH;
/// XChaCha20 nonce, stored before the ciphertext.
const NONCE_LENGTH: usize = 24;
/// Poly1305 tag, stored after the ciphertext.
const TAG_LENGTH: usize = 16;
/// Key file format version (the `version` field of `keys/` objects).
pub const KEY_FILE_VERSION: u32 = 1;
/// Default time one key derivation should take.
pub const DEFAULT_KDF_TARGET: Duration = Duration::from_millis(500);
/// argon2id memory (KiB): 32 MiB keeps every command's peak memory modest.
const KDF_MEMORY_KIB: u32 = 32 * 1024;

/// What an object is, bound into its seal as associated data.
#[derive(Debug, Clone, Copy)]
pub enum SealKind {
    /// One blob (data chunk or tree) inside a pack, sealed after compression
    /// (`lsmvault blob v1`).
    Blob,
    /// A pack's header; the 12-byte trailer after it stays plaintext
    /// (`lsmvault pack header v1`).
    PackHeader,
    /// A whole index file (`lsmvault index v1`).
    Index,
    /// A whole snapshot file (`lsmvault snapshot v1`).
    Snapshot,
    /// A whole `wal/` object: an archived segment record or a restore point
    /// (`lsmvault wal record v1`).
    WalRecord,
    /// A whole cluster snapshot (`clusters/`) (`lsmvault cluster snapshot v1`).
    ClusterSnapshot,
    /// The 64-byte master key inside a key file, always sealed with
    /// XChaCha20-Poly1305 under the password-derived key, whatever the
    /// repository's cipher (`lsmvault master key v1`).
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
            SealKind::ClusterSnapshot => b"lsmvault cluster snapshot v1",
        }
    }
}

/// The AEAD that seals an encrypted repository's objects (`config`'s
/// `encryption.cipher`). Both use the same sealed layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cipher {
    /// AES-256-GCM (ring, AES-NI/VAES) with a per-object subkey: 7x the
    /// throughput of XChaCha20-Poly1305 on this project's machines (see
    /// docs/security.md), so encryption costs little next to chunking.
    #[default]
    Aes256GcmSubkey,
    /// XChaCha20-Poly1305 (RustCrypto): no AES hardware needed.
    XChaCha20Poly1305,
}

impl Cipher {
    /// The name `config` records in `encryption.cipher`:
    /// `aes-256-gcm-subkey` or `xchacha20-poly1305`.
    pub fn name(self) -> &'static str {
        match self {
            Cipher::Aes256GcmSubkey => "aes-256-gcm-subkey",
            Cipher::XChaCha20Poly1305 => "xchacha20-poly1305",
        }
    }

    /// The cipher a `config` names; `None` for a name this build does not know.
    pub fn from_name(name: &str) -> Option<Cipher> {
        [Cipher::Aes256GcmSubkey, Cipher::XChaCha20Poly1305]
            .into_iter()
            .find(|cipher| cipher.name() == name)
    }
}

impl std::str::FromStr for Cipher {
    type Err = Error;

    fn from_str(text: &str) -> Result<Cipher> {
        Cipher::from_name(text).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "cipher {text:?}: expected aes-256-gcm-subkey or xchacha20-poly1305"
            ))
        })
    }
}

/// A keyed AEAD.
enum SealingKey {
    XChaCha(XChaCha20Poly1305),
    /// The AES-256-GCM master key; each object's key is derived from it.
    Aes256GcmSubkey([u8; 32]),
}

impl SealingKey {
    fn new(cipher: Cipher, key: [u8; 32]) -> SealingKey {
        match cipher {
            Cipher::XChaCha20Poly1305 => SealingKey::XChaCha(XChaCha20Poly1305::new(&key.into())),
            Cipher::Aes256GcmSubkey => SealingKey::Aes256GcmSubkey(key),
        }
    }

    /// The AES-256-GCM key and nonce of one object: subkey = keyed BLAKE3 of
    /// the context and the first half of the object's nonce.
    fn aes_object_key(key: &[u8; 32], nonce: &[u8; NONCE_LENGTH]) -> Option<(LessSafeKey, Nonce)> {
        let mut hasher = blake3::Hasher::new_keyed(key);
        hasher.update(b"lsmvault aes-256-gcm subkey v1");
        hasher.update(&nonce[..12]);
        let subkey = hasher.finalize();
        let unbound = UnboundKey::new(&AES_256_GCM, subkey.as_bytes()).ok()?;
        let mut gcm_nonce = [0u8; 12];
        gcm_nonce.copy_from_slice(&nonce[12..]);
        Some((
            LessSafeKey::new(unbound),
            Nonce::assume_unique_for_key(gcm_nonce),
        ))
    }

    /// Encrypts `buffer` in place; returns the tag.
    fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LENGTH],
        aad: &[u8],
        buffer: &mut [u8],
    ) -> Option<[u8; TAG_LENGTH]> {
        let mut out = [0u8; TAG_LENGTH];
        match self {
            SealingKey::XChaCha(cipher) => {
                let tag = cipher
                    .encrypt_in_place_detached(XNonce::from_slice(nonce), aad, buffer)
                    .ok()?;
                out.copy_from_slice(&tag);
            }
            SealingKey::Aes256GcmSubkey(key) => {
                let (key, nonce) = Self::aes_object_key(key, nonce)?;
                let tag = key
                    .seal_in_place_separate_tag(nonce, Aad::from(aad), buffer)
                    .ok()?;
                out.copy_from_slice(tag.as_ref());
            }
        }
        Some(out)
    }

    /// Opens `sealed` (`nonce | ciphertext | tag`) in its own allocation and
    /// leaves the plaintext at its start; `None` when anything was altered.
    /// ring's AES-GCM decrypts from the ciphertext's offset straight to the
    /// buffer's start, so the plaintext is not moved after decryption (that
    /// move was ~2% of an encrypted restore's samples).
    fn open_in_place(&self, aad: &[u8], sealed: &mut Vec<u8>) -> Option<()> {
        let tag_start = sealed.len().checked_sub(TAG_LENGTH)?;
        if tag_start < NONCE_LENGTH {
            return None;
        }
        let mut nonce = [0u8; NONCE_LENGTH];
        nonce.copy_from_slice(&sealed[..NONCE_LENGTH]);
        let plaintext_length = tag_start - NONCE_LENGTH;
        match self {
            SealingKey::XChaCha(cipher) => {
                let mut tag = [0u8; TAG_LENGTH];
                tag.copy_from_slice(&sealed[tag_start..]);
                cipher
                    .decrypt_in_place_detached(
                        XNonce::from_slice(&nonce),
                        aad,
                        &mut sealed[NONCE_LENGTH..tag_start],
                        Tag::from_slice(&tag),
                    )
                    .ok()?;
                sealed.copy_within(NONCE_LENGTH..tag_start, 0);
            }
            SealingKey::Aes256GcmSubkey(key) => {
                let (key, nonce) = Self::aes_object_key(key, &nonce)?;
                key.open_within(nonce, Aad::from(aad), sealed, NONCE_LENGTH..)
                    .ok()?;
            }
        }
        sealed.truncate(plaintext_length);
        Some(())
    }
}

/// The secrets of an open repository (or none, for a plaintext one).
#[derive(Clone)]
pub struct Keys {
    cipher: Option<Arc<SealingKey>>,
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

/// The repository's 64-byte master key: bytes 0..32 are the AEAD key,
/// 32..64 the blob-id key; the chunker's gear seed derives from all 64.
/// Stored only wrapped, in key files.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    bytes: [u8; 64],
}

impl MasterKey {
    /// A new random master key from the operating system's random source, made
    /// once by `init`: bytes 0..32 are the AEAD key, 32..64 the blob-id key.
    pub fn generate() -> Result<MasterKey> {
        let mut bytes = [0u8; 64];
        random_bytes(&mut bytes)?;
        Ok(MasterKey { bytes })
    }

    /// The key of the config's authenticator (format version 3):
    /// `blake3::derive_key("lsmvault config authenticator v1", master_key)`.
    pub fn config_authenticator_key(&self) -> [u8; 32] {
        blake3::derive_key("lsmvault config authenticator v1", &self.bytes)
    }

    /// The key that authenticates what a local metadata cache remembers of
    /// the repository's listings (`backend/cache/state.rs`):
    /// `blake3::derive_key("lsmvault metadata cache state v1", master_key)`.
    /// Local only; nothing in the repository depends on it.
    pub fn cache_state_key(&self) -> [u8; 32] {
        blake3::derive_key("lsmvault metadata cache state v1", &self.bytes)
    }

    /// The keys of a repository sealed with `cipher`.
    pub fn keys(&self, cipher: Cipher) -> Keys {
        let mut encryption = [0u8; 32];
        encryption.copy_from_slice(&self.bytes[..32]);
        let mut id_key = [0u8; 32];
        id_key.copy_from_slice(&self.bytes[32..]);
        let seed_material = blake3::derive_key("lsmvault chunker gear seed v1", &self.bytes);
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&seed_material[..8]);
        Keys {
            cipher: Some(Arc::new(SealingKey::new(cipher, encryption))),
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

    /// Whether objects are sealed and blob ids keyed (false for [`Keys::plaintext`]).
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

    /// The stored length of a sealed object of `plaintext_length` bytes.
    pub fn sealed_length(&self, plaintext_length: usize) -> usize {
        match self.cipher {
            Some(_) => plaintext_length + SEAL_OVERHEAD,
            None => plaintext_length,
        }
    }

    /// Seals `plaintext` (returns it unchanged, uncopied, without encryption).
    pub fn seal<'a>(&self, kind: SealKind, plaintext: &'a [u8]) -> Result<Cow<'a, [u8]>> {
        if self.cipher.is_none() {
            return Ok(Cow::Borrowed(plaintext));
        }
        let mut out = Vec::with_capacity(self.sealed_length(plaintext.len()));
        self.seal_append(kind, plaintext, &mut out)?;
        Ok(Cow::Owned(out))
    }

    /// Appends `plaintext`, sealed (as is without encryption), to `out` and
    /// encrypts it there: the pack writer seals each blob straight into its
    /// pack buffer. A separate ciphertext buffer would cost a copy and, for
    /// multi-MiB chunks, fresh pages (measured: as much as the cipher itself).
    pub fn seal_append(&self, kind: SealKind, plaintext: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let Some(cipher) = &self.cipher else {
            out.extend_from_slice(plaintext);
            return Ok(());
        };
        let mut nonce = [0u8; NONCE_LENGTH];
        random_bytes(&mut nonce)?;
        out.reserve(SEAL_OVERHEAD + plaintext.len());
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(plaintext);
        let sealed = cipher.seal_in_place(&nonce, kind.label(), &mut out[start..]);
        let Some(tag) = sealed else {
            // Leave `out` as it was: no half-sealed plaintext in a pack.
            out.truncate(start - NONCE_LENGTH);
            return Err(Error::InvalidArgument("encryption failed".into()));
        };
        out.extend_from_slice(&tag);
        Ok(())
    }

    /// Opens a sealed object; any change to it is an authentication failure
    /// naming `object`. Without encryption the input is returned as it came
    /// (borrowed or owned: never copied). Owned input is decrypted in place.
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
        let mut buffer = sealed.into_owned();
        cipher
            .open_in_place(kind.label(), &mut buffer)
            .ok_or_else(|| Error::AuthenticationFailed { object: object() })?;
        Ok(Cow::Owned(buffer))
    }
}

/// argon2id parameters, stored in each key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory cost in KiB (argon2's m); [`KdfParams::tuned`] uses 32768
    /// (32 MiB). A key file asking for more than 1 GiB is refused.
    pub memory_kib: u32,
    /// Time cost: passes over the memory (argon2's t), 1..=100 as tuned so one
    /// derivation takes about the target time. More than 1000 is refused.
    pub iterations: u32,
    /// Lanes (argon2's p); 1 as tuned. More than 64 is refused.
    pub parallelism: u32,
}

impl KdfParams {
    /// Parameters taking about `target` on this machine (at least 1 iteration).
    ///
    /// A derivation costs a fixed part (allocating and faulting in the
    /// memory, paid by every command again) plus a part per iteration; one
    /// timed 1-iteration probe counts the fixed part as an iteration's cost
    /// and undershot the target by ~2x. So time 1 and 4 iterations and solve
    /// for both parts.
    pub fn tuned(target: Duration) -> Result<KdfParams> {
        let with_iterations = |iterations| KdfParams {
            memory_kib: KDF_MEMORY_KIB,
            iterations,
            parallelism: 1,
        };
        let time = |params: KdfParams| -> Result<f64> {
            let started = Instant::now();
            params.derive(b"probe", &[0u8; 16])?;
            Ok(started.elapsed().as_secs_f64())
        };
        const PROBE_ITERATIONS: u32 = 4;
        let one = time(with_iterations(1))?;
        let several = time(with_iterations(PROBE_ITERATIONS))?;
        let per_iteration = ((several - one) / f64::from(PROBE_ITERATIONS - 1))
            .max(one / f64::from(PROBE_ITERATIONS))
            .max(1e-6);
        let fixed = (one - per_iteration).max(0.0);
        let iterations = ((target.as_secs_f64() - fixed) / per_iteration)
            .round()
            .clamp(1.0, 100.0) as u32;
        Ok(with_iterations(iterations))
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
    /// Key file format version, [`KEY_FILE_VERSION`]; unwrapping refuses any
    /// other as unsupported.
    pub version: u32,
    /// When the key file was written (RFC 3339, UTC, nanoseconds).
    pub created: String,
    /// Host name of the machine that wrote it (shown by `key list`).
    pub host: String,
    /// Name (or numeric uid) of the user who wrote it.
    pub user: String,
    /// Key derivation function: always `argon2id` (version 0x13); unwrapping
    /// refuses anything else.
    pub kdf: String,
    /// The argon2id cost parameters the wrapping key is derived with.
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
            cipher: Some(Arc::new(SealingKey::new(
                Cipher::XChaCha20Poly1305,
                params.derive(password, &salt)?,
            ))),
            id_key: None,
            chunker_seed: 0,
        };
        Ok(KeyFile {
            version: KEY_FILE_VERSION,
            created: crate::time::Timestamp::now().to_string(),
            host: host.to_string(),
            user: user.to_string(),
            kdf: "argon2id".to_string(),
            kdf_params: params,
            salt: hex(&salt),
            wrapped: hex(&wrapping.seal(SealKind::MasterKey, &master.bytes)?),
        })
    }

    /// Checks what can be checked without the password: the salt and the
    /// wrapped key are hex of the lengths this version writes (a flipped
    /// digit or a cut is found here, not taken for a wrong password). A key
    /// file of another version is left to [`KeyFile::unwrap_key`], which
    /// refuses it.
    pub fn check_form(&self, name: &str) -> Result<()> {
        /// 16 random bytes.
        const SALT_LENGTH: usize = 16;
        /// XChaCha20-Poly1305 nonce (24), the 64-byte master key, tag (16).
        const WRAPPED_LENGTH: usize = 24 + 64 + 16;
        if self.version != KEY_FILE_VERSION {
            return Ok(());
        }
        let object = format!("key file {name}");
        let salt = unhex(&self.salt, &object)?;
        let wrapped = unhex(&self.wrapped, &object)?;
        if salt.len() != SALT_LENGTH || wrapped.len() != WRAPPED_LENGTH {
            return Err(Error::corrupt(
                object,
                format!(
                    "a salt of {} bytes and a wrapped key of {} bytes, expected {SALT_LENGTH} and {WRAPPED_LENGTH}",
                    salt.len(),
                    wrapped.len()
                ),
            ));
        }
        Ok(())
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
            cipher: Some(Arc::new(SealingKey::new(
                Cipher::XChaCha20Poly1305,
                self.kdf_params.derive(password, &salt)?,
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
        let first = MasterKey::generate().unwrap().keys(Cipher::default());
        let second = MasterKey::generate().unwrap().keys(Cipher::default());
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
    fn cipher_names_round_trip() {
        for cipher in [Cipher::Aes256GcmSubkey, Cipher::XChaCha20Poly1305] {
            assert_eq!(cipher.name().parse::<Cipher>().unwrap(), cipher);
        }
        assert!("aes-128-ctr".parse::<Cipher>().is_err());
    }

    /// Pins the AES-256-GCM subkey construction: a sealed object written by
    /// this build must open in every later one (and in a second implementation).
    #[test]
    fn aes_subkey_seal_is_pinned() {
        let keys = MasterKey { bytes: [7u8; 64] }.keys(Cipher::Aes256GcmSubkey);
        let SealingKey::Aes256GcmSubkey(key) = keys.cipher.as_deref().unwrap() else {
            panic!("not AES");
        };
        let nonce = [3u8; NONCE_LENGTH];
        let mut buffer = b"lsmvault".to_vec();
        let tag = keys
            .cipher
            .as_ref()
            .unwrap()
            .seal_in_place(&nonce, SealKind::Blob.label(), &mut buffer)
            .unwrap();
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&buffer);
        sealed.extend_from_slice(&tag);
        assert_eq!(
            hex(&sealed),
            PINNED_AES_SEAL,
            "the sealed layout or subkey derivation changed (key {})",
            hex(key)
        );
        let opened = keys.open(SealKind::Blob, sealed, || "x".into()).unwrap();
        assert_eq!(opened.as_ref(), b"lsmvault");
    }

    /// The config authenticator key is BLAKE3's derive_key with its own
    /// context over all 64 master key bytes (pinned).
    #[test]
    fn config_authenticator_key_is_pinned() {
        let key = MasterKey { bytes: [7u8; 64] }.config_authenticator_key();
        assert_eq!(
            key,
            blake3::derive_key("lsmvault config authenticator v1", &[7u8; 64])
        );
        assert_eq!(hex(&key), PINNED_CONFIG_AUTHENTICATOR_KEY);
    }

    /// The cache state key has a context of its own: never the config
    /// authenticator's.
    #[test]
    fn cache_state_key_is_its_own_derivation() {
        let master = MasterKey { bytes: [7u8; 64] };
        assert_eq!(
            master.cache_state_key(),
            blake3::derive_key("lsmvault metadata cache state v1", &[7u8; 64])
        );
        assert_ne!(master.cache_state_key(), master.config_authenticator_key());
    }

    const PINNED_CONFIG_AUTHENTICATOR_KEY: &str =
        "07463a11c284db938ca38e54147022d0b304104f83510b5afd35ca304337b18c";

    /// Computed independently with Python's `blake3` and `cryptography`
    /// (AESGCM) packages from the construction in docs/security.md.
    const PINNED_AES_SEAL: &str = "030303030303030303030303030303030303030303030303\
                                   3262c28b3505d74d7495a5b072f03adc38181200ba617df9";

    #[test]
    fn seals_bind_their_kind() {
        let keys = MasterKey::generate().unwrap().keys(Cipher::default());
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
        fn seal_round_trip_and_any_flip_fails(
            data in proptest::collection::vec(any::<u8>(), 0..2000),
            flip in any::<usize>(),
            xchacha in any::<bool>(),
        ) {
            let cipher = if xchacha { Cipher::XChaCha20Poly1305 } else { Cipher::Aes256GcmSubkey };
            let master = MasterKey::generate().unwrap();
            let keys = master.keys(cipher);
            let sealed = keys.seal(SealKind::Blob, &data).unwrap();
            prop_assert_eq!(sealed.len(), data.len() + SEAL_OVERHEAD);
            // Borrowed and owned input open alike (owned is decrypted in place).
            let opened = keys.open(SealKind::Blob, sealed.as_ref(), || "blob".into()).unwrap().into_owned();
            prop_assert_eq!(&opened, &data);
            let opened = keys.open(SealKind::Blob, sealed.clone().into_owned(), || "blob".into()).unwrap().into_owned();
            prop_assert_eq!(&opened, &data);
            // Sealing onto a buffer's end leaves what it held and opens alike.
            let mut appended = b"prefix".to_vec();
            keys.seal_append(SealKind::Blob, &data, &mut appended).unwrap();
            prop_assert_eq!(&appended[..6], b"prefix");
            let opened = keys.open(SealKind::Blob, &appended[6..], || "blob".into()).unwrap().into_owned();
            prop_assert_eq!(&opened, &data);
            // The other cipher under the same master key does not open it.
            let other = master.keys(if xchacha { Cipher::Aes256GcmSubkey } else { Cipher::XChaCha20Poly1305 });
            prop_assert!(other.open(SealKind::Blob, sealed.as_ref(), || "blob".into()).is_err());
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
