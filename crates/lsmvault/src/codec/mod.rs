//! Transformations of blob content: content-defined chunking, compression and
//! encryption. Pure functions and small state machines; no repository I/O (the
//! only outside input is the system's random source, for keys and nonces).
//!
//! Invariant: what existing repositories hold keeps its meaning. Chunk
//! boundaries, codec numbers and the sealed layout are part of the on-disk
//! format (`docs/format.md`), pinned by tests (`pinned_boundaries`,
//! `aes_subkey_seal_is_pinned`); changing one needs a new name or version.

pub mod adaptive;
pub mod chunker;
pub mod compression;
pub mod crypto;
pub mod erasure;
