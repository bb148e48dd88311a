//! `repair`: rebuilding what can be derived again from what the repository
//! still holds, and saving what can be saved of what it lost.
//!
//! - [`index`]: `repair index` rebuilds the index from the pack headers;
//! - [`snapshots`]: `repair snapshots` rewrites the snapshots that reference
//!   lost data without it, recording what was dropped;
//! - `packs`: `repair packs` rebuilds lost and damaged packs from parity.

pub mod index;
mod packs;
pub mod snapshots;

pub use index::{DamagedPack, RepairIndexReport};
pub use packs::{LostPack, ParityChange, RebuiltPack, RepairPacksOptions, RepairPacksReport};
pub use snapshots::{RepairSnapshotsOptions, RepairSnapshotsReport, RepairedSnapshot};
