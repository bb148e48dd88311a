//! The framing every binary repository object shares (pack headers, index
//! files): `magic [8] | version (u16 or u32, little-endian) | body |
//! blake3(everything before)[..checksum length]`.
//!
//! Checks run in one order for every object: length, checksum, magic, then
//! version, so damage is reported as damage before a garbled version number
//! could be mistaken for a newer format.

use crate::error::{Error, Result};

/// How wide an object's version field is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VersionWidth {
    /// Two bytes (pack headers).
    U16,
    /// Four bytes (index files).
    U32,
}

impl VersionWidth {
    fn bytes(self) -> usize {
        match self {
            VersionWidth::U16 => 2,
            VersionWidth::U32 => 4,
        }
    }
}

/// The frame of one kind of object.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Framing {
    /// The first eight bytes of every object of this kind.
    pub magic: &'static [u8; 8],
    /// The version this build writes and reads.
    pub version: u32,
    pub version_width: VersionWidth,
    /// How many bytes of the BLAKE3 hash close the object (16 or 32).
    pub checksum_length: usize,
    /// What the framed bytes are called in messages (`"header"` for pack
    /// headers, `None` when the object is the framed bytes themselves).
    pub subject: Option<&'static str>,
}

impl Framing {
    /// Length of magic plus version.
    pub fn prefix_length(&self) -> usize {
        8 + self.version_width.bytes()
    }

    /// A buffer holding magic and version, with room for `body_capacity`
    /// more bytes and the checksum.
    pub fn start(&self, body_capacity: usize) -> Vec<u8> {
        let mut bytes =
            Vec::with_capacity(self.prefix_length() + body_capacity + self.checksum_length);
        bytes.extend_from_slice(self.magic);
        match self.version_width {
            VersionWidth::U16 => bytes.extend_from_slice(&(self.version as u16).to_le_bytes()),
            VersionWidth::U32 => bytes.extend_from_slice(&self.version.to_le_bytes()),
        }
        bytes
    }

    /// Appends the checksum over everything written so far.
    pub fn finish(&self, bytes: &mut Vec<u8>) {
        let checksum = blake3::hash(bytes);
        bytes.extend_from_slice(&checksum.as_bytes()[..self.checksum_length]);
    }

    /// Checks length (at least `minimum_body` bytes of body), checksum,
    /// magic and version; returns the body between version and checksum.
    /// `object` names the object in errors.
    pub fn open<'a>(
        &self,
        bytes: &'a [u8],
        minimum_body: usize,
        object: impl Fn() -> String,
    ) -> Result<&'a [u8]> {
        let corrupt = |reason: String| Error::corrupt(object(), reason);
        let prefix = match self.subject {
            Some(subject) => format!("{subject} "),
            None => String::new(),
        };
        if bytes.len() < self.prefix_length() + minimum_body + self.checksum_length {
            return Err(corrupt(match self.subject {
                Some(subject) => format!("{subject} of {} bytes is too short", bytes.len()),
                None => format!("{} bytes is too short", bytes.len()),
            }));
        }
        let (framed, checksum) = bytes.split_at(bytes.len() - self.checksum_length);
        if &blake3::hash(framed).as_bytes()[..self.checksum_length] != checksum {
            return Err(corrupt(format!("{prefix}checksum mismatch")));
        }
        let (magic, rest) = framed.split_at(8);
        if magic != self.magic {
            return Err(corrupt(format!("{prefix}magic missing")));
        }
        let (version, body) = rest.split_at(self.version_width.bytes());
        let found = version
            .iter()
            .rev()
            .fold(0u32, |value, byte| (value << 8) | u32::from(*byte));
        if found != self.version {
            return Err(Error::UnsupportedVersion {
                object: object(),
                found,
                supported: self.version,
            });
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAMING: Framing = Framing {
        magic: b"LSMVTEST",
        version: 3,
        version_width: VersionWidth::U16,
        checksum_length: 16,
        subject: Some("header"),
    };

    #[test]
    fn round_trip_and_each_check() {
        let mut bytes = FRAMING.start(4);
        bytes.extend_from_slice(b"body");
        FRAMING.finish(&mut bytes);
        assert_eq!(&bytes[..10], b"LSMVTEST\x03\x00");
        assert_eq!(FRAMING.open(&bytes, 4, || "x".into()).unwrap(), b"body");

        let short = FRAMING.open(&bytes, 5, || "x".into()).unwrap_err();
        assert!(short.to_string().contains("too short"), "{short}");

        let mut flipped = bytes.clone();
        flipped[11] ^= 1;
        let damaged = FRAMING.open(&flipped, 4, || "x".into()).unwrap_err();
        assert!(damaged.to_string().contains("header checksum mismatch"));

        let newer = Framing {
            version: 4,
            ..FRAMING
        };
        let mut bytes = newer.start(0);
        newer.finish(&mut bytes);
        let refused = FRAMING.open(&bytes, 0, || "x".into()).unwrap_err();
        assert_eq!(refused.code(), crate::ErrorCode::UnsupportedVersion);
    }
}
