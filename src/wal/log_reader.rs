//! Placeholder: the LevelDB/RocksDB log format reader.
