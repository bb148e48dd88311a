//! `wal/` objects: one archived version of one WAL segment, or a named
//! restore point (JSON with a version field, sealed in encrypted repositories).
//!
//! Invariant: [`WalObject::decode`] returns only objects of version
//! [`WAL_RECORD_VERSION`]; the `type` field (`segment` or `restore_point`)
//! selects the variant. Objects are named by the BLAKE3 hash of their stored
//! bytes and never modified: a segment that grew is archived again as a new
//! record, and readers take the longest version (the newest among equals).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::Id;

/// The `version` field of every `wal/` object; a reader refuses any other.
pub const WAL_RECORD_VERSION: u32 = 1;

/// One archived version of one WAL segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentRecord {
    /// The database the segment belongs to: its `IDENTITY` (a UUID), or the
    /// id given to the archive when the directory has none.
    pub database_id: String,
    /// The segment's file number (`000123.log` is 123).
    pub segment: u64,
    /// Its file name in the database directory (`000123.log`).
    pub file_name: String,
    /// Bytes of the segment as archived in this version (a growing segment is
    /// archived again, as a new record, each time it grew).
    pub size: u64,
    /// Whole-content digest (same hash as file digests in trees).
    pub digest: Id,
    /// Ids of the data blobs that make up the `size` bytes, in order. A grown
    /// segment keeps its previous version's chunks and appends those of the
    /// new bytes.
    pub chunks: Vec<Id>,
    /// First sequence number of the first readable write batch (`None`: no
    /// readable batch).
    pub first_sequence: Option<u64>,
    /// Last sequence number taken by the readable write batches (`None`: none
    /// took one).
    pub last_sequence: Option<u64>,
    /// Readable write batches.
    pub batches: u64,
    /// Offset just after the last readable record: a safe cut point.
    pub readable_end: u64,
    /// Sequence holes inside the segment (`(first missing, last missing)`):
    /// writes without WAL, or damage.
    #[serde(default)]
    pub holes: Vec<(u64, u64)>,
    /// `clean`, or how the readable part ends (torn or corrupt, with offset).
    pub tail: String,
    /// When this version was archived (RFC 3339, UTC, nanoseconds);
    /// recovery to a time relies on it.
    pub archived_at: String,
    /// Host name of the machine that archived it.
    pub host: String,
}

/// A named point in time: the newest archived sequence when it was taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestorePoint {
    /// The name the user gave it; recovery finds the point by this name.
    pub name: String,
    /// The database it belongs to (as in [`SegmentRecord::database_id`]).
    pub database_id: String,
    /// The newest archived sequence number when the point was taken:
    /// recovery to the point keeps every write batch ending at or before it.
    pub sequence: u64,
    /// When the point was taken (RFC 3339, UTC, nanoseconds).
    pub time: String,
    /// Host name of the machine that took it.
    pub host: String,
}

/// The content of a `wal/` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WalObject {
    /// `"type": "segment"`: one archived version of one segment.
    Segment(SegmentRecord),
    /// `"type": "restore_point"`: a named restore point.
    RestorePoint(RestorePoint),
}

#[derive(Serialize, Deserialize)]
struct Versioned {
    version: u32,
    #[serde(flatten)]
    object: WalObject,
}

impl SegmentRecord {
    /// Checks content read back from the repository against the recorded
    /// size and whole-content digest.
    pub fn check_content(&self, size: u64, digest: &Id) -> Result<()> {
        let object = || {
            format!(
                "archived WAL segment {} of database {}",
                self.file_name, self.database_id
            )
        };
        // A size mismatch said as one (not as "hashes to X, expected X").
        if size != self.size {
            return Err(Error::corrupt(
                object(),
                format!("{size} bytes read back, {} recorded", self.size),
            ));
        }
        if *digest != self.digest {
            return Err(Error::ChecksumMismatch {
                object: object(),
                expected: self.digest.to_hex(),
                actual: digest.to_hex(),
            });
        }
        Ok(())
    }
}

impl WalObject {
    /// Parses a `wal/` object's JSON; `describe` names it in errors.
    pub fn decode(json: &[u8], describe: impl Fn() -> String) -> Result<WalObject> {
        let versioned: Versioned = serde_json::from_slice(json)
            .map_err(|error| Error::corrupt(describe(), error.to_string()))?;
        if versioned.version != WAL_RECORD_VERSION {
            return Err(Error::UnsupportedVersion {
                object: describe(),
                found: versioned.version,
                supported: WAL_RECORD_VERSION,
            });
        }
        Ok(versioned.object)
    }

    /// The JSON of this object, with the current version.
    pub fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(&Versioned {
            version: WAL_RECORD_VERSION,
            object: self.clone(),
        })
        .map_err(|error| Error::InvalidArgument(error.to_string()))
    }
}
