//! Write-ahead log support: the LevelDB/RocksDB log format reader.
//! (Archive and point-in-time cut arrive with the WAL-archiving work.)

pub mod archive;
pub mod log_reader;
pub mod manifest;
pub mod recovery;
pub mod write_batch;
