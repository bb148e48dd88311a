//! What lsmvault knows about LSM databases: the LevelDB/RocksDB log format,
//! write batches, the MANIFEST's last sequence, file classes and live
//! checkpoints of a database directory.

pub mod checkpoint;
pub mod file_class;
pub mod log;
pub mod manifest;
pub mod write_batch;
