//! Every on-disk object of a repository, as bytes in and values out: no I/O.
//!
//! Each module owns one object's encoding and its checks; the fuzz targets
//! depend on these parsers accepting any bytes without panicking.

pub mod cluster;
pub mod config;
mod framing;
pub mod index;
pub mod pack;
pub mod parity;
pub mod snapshot;
pub mod topology;
pub mod tree;
pub mod wal_object;
