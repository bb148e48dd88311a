//! What lsmvault knows about LSM databases: the LevelDB/RocksDB log format,
//! write batches, the MANIFEST's last sequence, file classes and live
//! checkpoints of a database directory.
//!
//! Nothing here knows about repositories: the backup, the WAL archive and
//! point-in-time recovery call in. The readers of database files (the log,
//! write batches, the MANIFEST) take byte slices and report damage as values
//! or errors, never as a panic, whatever the bytes (the fuzz targets hold them
//! to it). The only writer is [`checkpoint::checkpoint`], which writes nothing
//! outside the new directory it creates.

pub mod checkpoint;
pub mod file_class;
pub mod log;
pub mod manifest;
pub mod pause;
pub mod write_batch;
