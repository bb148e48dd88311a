//! Content identifiers: 32-byte BLAKE3 digests, written as 64 lowercase hex digits.
//!
//! One type serves chunks, trees, packs, index files and snapshots, because they
//! are all named the same way (the hash of their content); the object kind is
//! always known from where the id is used.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// A BLAKE3 digest naming an object by its content.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub [u8; 32]);

impl Id {
    /// Length of an id in bytes.
    pub const LEN: usize = 32;

    /// The id of `bytes`: their BLAKE3 hash.
    pub fn of(bytes: &[u8]) -> Id {
        Id(*blake3::hash(bytes).as_bytes())
    }

    /// Lowercase hex form (64 characters).
    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(64);
        for byte in self.0 {
            out.push(DIGITS[usize::from(byte >> 4)] as char);
            out.push(DIGITS[usize::from(byte & 0xf)] as char);
        }
        out
    }

    /// The first 8 hex digits, as shown in listings.
    pub fn short(&self) -> String {
        self.to_hex()[..8].to_string()
    }

    /// Parses exactly 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Result<Id, Error> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return Err(Error::InvalidArgument(format!(
                "{text:?} is not an id: expected 64 hex digits, got {}",
                bytes.len()
            )));
        }
        let mut id = [0u8; 32];
        for (slot, pair) in id.iter_mut().zip(bytes.chunks_exact(2)) {
            let high = hex_value(pair[0]);
            let low = hex_value(pair[1]);
            match (high, low) {
                (Some(high), Some(low)) => *slot = (high << 4) | low,
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "{text:?} is not an id: it holds a non-hex character"
                    )))
                }
            }
        }
        Ok(Id(id))
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Id {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Id({})", self.short())
    }
}

impl FromStr for Id {
    type Err = Error;
    fn from_str(text: &str) -> Result<Id, Error> {
        Id::from_hex(text)
    }
}

// Human-readable formats (JSON) get hex; binary formats (postcard) get the raw 32 bytes.
impl Serialize for Id {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Id, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            Id::from_hex(&text).map_err(serde::de::Error::custom)
        } else {
            Ok(Id(<[u8; 32]>::deserialize(deserializer)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn hex_round_trip(bytes in proptest::array::uniform32(any::<u8>())) {
            let id = Id(bytes);
            prop_assert_eq!(Id::from_hex(&id.to_hex()).unwrap(), id);
            prop_assert_eq!(Id::from_hex(&id.to_hex().to_uppercase()).unwrap(), id);
        }

        #[test]
        fn json_and_postcard_round_trip(bytes in proptest::array::uniform32(any::<u8>())) {
            let id = Id(bytes);
            let json = serde_json::to_string(&id).unwrap();
            prop_assert_eq!(json.len(), 66);
            prop_assert_eq!(serde_json::from_str::<Id>(&json).unwrap(), id);
            let binary = postcard::to_stdvec(&id).unwrap();
            prop_assert_eq!(postcard::from_bytes::<Id>(&binary).unwrap(), id);
        }
    }

    #[test]
    fn rejects_bad_text() {
        assert!(Id::from_hex("abc").is_err());
        assert!(Id::from_hex(&"g".repeat(64)).is_err());
        assert!(Id::from_hex(&"é".repeat(32)).is_err());
    }

    #[test]
    fn id_is_blake3() {
        assert_eq!(
            Id::of(b"").to_hex(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }
}
