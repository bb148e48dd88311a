//! `wal/` objects: one archived version of one WAL segment, or a named
//! restore point (JSON with a version field, sealed in encrypted repositories).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::Id;

/// Version of WAL record objects.
pub const WAL_RECORD_VERSION: u32 = 1;

/// One archived version of one WAL segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentRecord {
    pub database_id: String,
    /// The segment's file number (`000123.log` is 123).
    pub segment: u64,
    /// Its file name in the database directory (`000123.log`).
    pub file_name: String,
    pub size: u64,
    /// Whole-content digest (same hash as file digests in trees).
    pub digest: Id,
    pub chunks: Vec<Id>,
    /// Sequence numbers of the first and last readable write batch.
    pub first_sequence: Option<u64>,
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
    pub archived_at: String,
    pub host: String,
}

/// A named point in time: the newest archived sequence when it was taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestorePoint {
    pub name: String,
    pub database_id: String,
    pub sequence: u64,
    pub time: String,
    pub host: String,
}

/// The content of a `wal/` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WalObject {
    Segment(SegmentRecord),
    RestorePoint(RestorePoint),
}

#[derive(Serialize, Deserialize)]
struct Versioned {
    version: u32,
    #[serde(flatten)]
    object: WalObject,
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
