//! `cat`: one repository object, decoded, for debugging.
//!
//! Read-only and lock-free. Every object is read through the repository's
//! own reader for its kind, so what is shown was opened (in an encrypted
//! repository), checked against its name or id and parsed: a damaged object
//! fails as it would anywhere else, naming itself. Ids may be given as
//! unique prefixes; snapshots also accept `latest` and `latest:TAG`.
//!
//! A key file is shown as stored (its master key stays wrapped under the
//! password); nothing here ever reveals key material.

use serde::Serialize;
use serde_json::{json, Value};

use crate::backend::ObjectKind;
use crate::codec::crypto::KeyFile;
use crate::error::{Error, Result};
use crate::format::index::BlobLocation;
use crate::format::pack::{BlobKind, PackEntry};
use crate::id::Id;
use crate::repo::lock::parse_lock;
use crate::repo::Repository;

/// The kinds of object `cat` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatKind {
    /// The repository `config` (takes no id).
    Config,
    /// A snapshot: id, prefix, `latest` or `latest:TAG`.
    Snapshot,
    /// An index file: its entries.
    Index,
    /// A tree blob, decoded.
    Tree,
    /// A blob's raw (decoded) content.
    Blob,
    /// A pack's header (its entries), read with two range reads.
    Pack,
    /// A key file, as stored (the master key stays wrapped).
    Key,
    /// A lock.
    Lock,
    /// A WAL record (segment version or restore point).
    Wal,
}

impl CatKind {
    /// Every kind, in the order help texts list them.
    pub const ALL: [CatKind; 9] = [
        CatKind::Config,
        CatKind::Snapshot,
        CatKind::Index,
        CatKind::Tree,
        CatKind::Blob,
        CatKind::Pack,
        CatKind::Key,
        CatKind::Lock,
        CatKind::Wal,
    ];

    /// The word that names this kind on a command line.
    pub fn name(self) -> &'static str {
        match self {
            CatKind::Config => "config",
            CatKind::Snapshot => "snapshot",
            CatKind::Index => "index",
            CatKind::Tree => "tree",
            CatKind::Blob => "blob",
            CatKind::Pack => "pack",
            CatKind::Key => "key",
            CatKind::Lock => "lock",
            CatKind::Wal => "wal",
        }
    }

    /// Whether an object of this kind is named by an id (all but `config`).
    pub fn takes_id(self) -> bool {
        self != CatKind::Config
    }
}

impl std::str::FromStr for CatKind {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        CatKind::ALL
            .into_iter()
            .find(|kind| kind.name() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = CatKind::ALL.iter().map(|kind| kind.name()).collect();
                Error::InvalidArgument(format!(
                    "unknown object kind `{text}`: expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

/// What `cat` shows: a JSON document, or raw bytes (a blob).
#[derive(Debug, Clone)]
pub enum CatOutput {
    /// A decoded object.
    Json(Value),
    /// A blob's content.
    Raw(Vec<u8>),
}

/// How many candidates an ambiguous prefix names.
const SHOWN_CANDIDATES: usize = 5;

impl Repository {
    /// Reads, checks and decodes the object of `kind` named by `id` (a full
    /// id or a unique prefix; ignored for `config`).
    pub fn cat(&self, kind: CatKind, id: &str) -> Result<CatOutput> {
        let json = |value: Result<Value>| value.map(CatOutput::Json);
        match kind {
            CatKind::Config => json(to_json(self.config())),
            CatKind::Snapshot => {
                let entry = self.find_snapshot(id)?;
                json(Ok(
                    json!({ "id": entry.id, "snapshot": to_json(&entry.snapshot)? }),
                ))
            }
            CatKind::Index => {
                let name = self.resolve_object(ObjectKind::Index, id)?;
                let locations = self.read_index_file(&name)?;
                let entries: Vec<Value> = locations.iter().map(location_json).collect();
                json(Ok(json!({ "id": name, "blobs": entries })))
            }
            CatKind::Tree => {
                let blob = self.resolve_blob(id, Some(BlobKind::Tree))?;
                json(Ok(
                    json!({ "id": blob, "tree": to_json(&self.read_tree(&blob)?)? }),
                ))
            }
            CatKind::Blob => Ok(CatOutput::Raw(
                self.read_blob(&self.resolve_blob(id, None)?)?,
            )),
            CatKind::Pack => json(self.pack_header_json(id)),
            CatKind::Key => {
                let name = self.resolve_object(ObjectKind::Key, id)?;
                let bytes = self.backend().read(ObjectKind::Key, &name)?;
                let file: KeyFile = serde_json::from_slice(&bytes).map_err(|error| {
                    Error::corrupt(ObjectKind::Key.describe(&name), error.to_string())
                })?;
                json(Ok(json!({ "id": name, "key": to_json(&file)? })))
            }
            CatKind::Lock => {
                let name = self.resolve_object(ObjectKind::Lock, id)?;
                let bytes = self.backend().read(ObjectKind::Lock, &name)?;
                let info = parse_lock(&name, &bytes)?.ok_or_else(|| {
                    Error::corrupt(ObjectKind::Lock.describe(&name), "not a lock object")
                })?;
                json(Ok(json!({ "id": name, "lock": to_json(&info)? })))
            }
            CatKind::Wal => {
                let name = self.resolve_object(ObjectKind::Wal, id)?;
                let (id, object) = self.read_wal_object(&name)?;
                json(Ok(json!({ "id": id, "record": to_json(&object)? })))
            }
        }
    }

    /// A pack's header: its name, size and entries.
    fn pack_header_json(&self, id: &str) -> Result<Value> {
        let name = self.resolve_object(ObjectKind::Pack, id)?;
        let size = self
            .backend()
            .list(ObjectKind::Pack)?
            .into_iter()
            .find(|object| object.name == name)
            .map(|object| object.size)
            .ok_or_else(|| Error::ObjectNotFound {
                kind: "pack".into(),
                prefix: id.into(),
            })?;
        let entries = self.read_pack_header(&name, size)?;
        Ok(json!({
            "id": name,
            "size": size,
            "blobs": entries.iter().map(entry_json).collect::<Vec<_>>(),
        }))
    }

    /// The one object name of `kind` that is `prefix` or starts with it.
    fn resolve_object(&self, kind: ObjectKind, prefix: &str) -> Result<String> {
        let wanted = normalized_prefix(kind.describe(""), prefix)?;
        let names: Vec<String> = self
            .backend()
            .list(kind)?
            .into_iter()
            .map(|object| object.name)
            .filter(|name| name.starts_with(&wanted))
            .collect();
        unique(kind.describe("").trim_end().to_string(), prefix, names)
    }

    /// The one indexed blob (of `kind`, when given) whose id starts with `prefix`.
    fn resolve_blob(&self, prefix: &str, kind: Option<BlobKind>) -> Result<Id> {
        let what = match kind {
            Some(BlobKind::Tree) => "tree",
            _ => "blob",
        };
        let wanted = normalized_prefix(what.to_string(), prefix)?;
        let index = self.index()?;
        let ids: Vec<String> = index
            .iter()
            .filter(|location| kind.is_none_or(|kind| location.entry.kind == kind))
            .map(|location| location.entry.id.to_hex())
            .filter(|id| id.starts_with(&wanted))
            .collect();
        let name = unique(what.to_string(), prefix, ids)?;
        Id::from_hex(&name).map_err(|error| Error::InvalidArgument(error.to_string()))
    }
}

/// `prefix` lower-cased, refused unless it is 1 to 64 hex digits.
fn normalized_prefix(kind: String, prefix: &str) -> Result<String> {
    let lower = prefix.trim().to_ascii_lowercase();
    if lower.is_empty() || lower.len() > 64 || !lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::InvalidArgument(format!(
            "{} id {prefix:?}: an id or prefix is 1 to 64 hex digits",
            kind.trim_end()
        )));
    }
    Ok(lower)
}

/// The single candidate, or why there is not one.
fn unique(kind: String, prefix: &str, mut candidates: Vec<String>) -> Result<String> {
    candidates.sort();
    candidates.dedup();
    match candidates.len() {
        0 => Err(Error::ObjectNotFound {
            kind,
            prefix: prefix.to_string(),
        }),
        1 => Ok(candidates.swap_remove(0)),
        count => Err(Error::AmbiguousObject {
            kind,
            prefix: prefix.to_string(),
            candidates: candidates
                .iter()
                .take(SHOWN_CANDIDATES)
                .map(|name| name.chars().take(12).collect::<String>())
                .chain(
                    (count > SHOWN_CANDIDATES)
                        .then(|| format!("and {} more", count - SHOWN_CANDIDATES)),
                )
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Value> {
    serde_json::to_value(value).map_err(|error| Error::InvalidArgument(error.to_string()))
}

fn entry_json(entry: &PackEntry) -> Value {
    json!({
        "id": entry.id,
        "type": entry.kind,
        "codec": format!("{:?}", entry.codec),
        "offset": entry.offset,
        "stored_length": entry.stored_length,
        "raw_length": entry.raw_length,
    })
}

fn location_json(location: &BlobLocation) -> Value {
    let mut value = entry_json(&location.entry);
    value["pack"] = json!(location.pack);
    value
}
