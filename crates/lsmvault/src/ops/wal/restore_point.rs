//! Named restore points (`lsmvault tag`): the newest archived sequence number
//! of a database under a name, which point-in-time recovery accepts as a target.

use std::path::Path;
use std::time::SystemTime;

use super::ArchiveOptions;
use crate::error::{Error, Result};
use crate::format::snapshot::format_time;
use crate::format::wal_object::{RestorePoint, WalObject};
use crate::repo::Repository;

impl Repository {
    /// Archives the WAL now and records a named restore point at the newest
    /// archived sequence number.
    pub fn create_restore_point(
        &self,
        name: &str,
        directory: &Path,
        options: &ArchiveOptions,
    ) -> Result<RestorePoint> {
        let report = self.archive_wal(directory, options)?;
        let sequence = self
            .latest_segments(&report.database_id)?
            .values()
            .filter_map(|record| record.last_sequence)
            .max()
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{} has no archived write batches: nothing to name",
                    directory.display()
                ))
            })?;
        let point = RestorePoint {
            name: name.to_string(),
            database_id: report.database_id,
            sequence,
            time: format_time(SystemTime::now()),
            host: crate::repo::lock::host_name(),
        };
        self.write_wal_object(&WalObject::RestorePoint(point.clone()))?;
        Ok(point)
    }
}
