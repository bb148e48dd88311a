//! Transformations of blob content: content-defined chunking, compression and
//! encryption. Pure functions and small state machines; no repository I/O.

pub mod chunker;
pub mod compression;
pub mod crypto;
