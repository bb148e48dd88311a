//! One module per operation: options in, report out.

pub mod backup;
pub mod cat;
pub mod copy;
pub mod dump;
pub mod find;
pub mod forget;
pub mod migrate;
pub mod prune;
pub mod repair;
pub mod restore;
pub mod stats;
pub mod verify;
pub mod wal;
