//! The snapshot filter flags restic users reach for — `--tag`, `--host`,
//! `--path`, `--database-id` — shared by `snapshots`, `forget`, `ls` and
//! `diff` (and, without `--tag` and `--database-id`, which mean a restore
//! point and the database to recover there, by `restore`).

use clap::Args;
use lsmvault::repo::SnapshotFilter;

#[derive(Args, Debug, Default, Clone)]
pub struct FilterArgs {
    /// Only snapshots with these tags: `a,b` needs both, `--tag a --tag b`
    /// either, `--tag ''` none at all (as restic).
    #[arg(long = "tag", value_name = "TAG[,TAG...]")]
    pub tags: Vec<String>,
    /// Only snapshots made on this host.
    #[arg(long)]
    pub host: Option<String>,
    /// Only snapshots of this source path (the directory backed up).
    #[arg(long = "path", alias = "source", value_name = "PATH")]
    pub source_path: Option<String>,
    /// Only snapshots of the database with this identity.
    #[arg(long, value_name = "ID")]
    pub database_id: Option<String>,
}

impl FilterArgs {
    /// A warning for `forget` when `--tag` is repeated without commas:
    /// that selects snapshots with *any* of the tags (restic's rule), where
    /// earlier lsmvault versions required them all; a cron job written for
    /// the old reading would now remove more than its author meant.
    pub fn repeated_tag_warning(&self) -> Option<String> {
        (self.tags.len() > 1 && self.tags.iter().all(|list| !list.contains(','))).then(|| {
            format!(
                "warning: --tag {} selects snapshots with ANY of these tags; \
                 write --tag {} for snapshots with all of them",
                self.tags.join(" --tag "),
                self.tags.join(",")
            )
        })
    }

    /// The library's filter these flags describe.
    pub fn filter(&self) -> SnapshotFilter {
        build(
            &self.tags,
            self.host.as_deref(),
            self.source_path.as_deref(),
            self.database_id.as_deref(),
        )
    }
}

/// A filter from the flag values: each `--tag` value is a comma-separated
/// list (empty names dropped; a list left empty, as `--tag ''`, passes the
/// untagged snapshots, as restic's); a `--path` that exists here is made
/// canonical, as the backup recorded it.
pub fn build(
    tags: &[String],
    host: Option<&str>,
    path: Option<&str>,
    database_id: Option<&str>,
) -> SnapshotFilter {
    SnapshotFilter {
        tags: tags
            .iter()
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|tag| !tag.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect(),
        host: host.map(str::to_string),
        source: path.map(absolute_path),
        kind: None,
        database_id: database_id.map(str::to_string),
    }
}

/// `path` as a backup records its source: canonical when it exists here
/// (`.`, `ckpt/../db`, a symlink), as given otherwise (a path of another host).
fn absolute_path(path: &str) -> String {
    std::fs::canonicalize(path)
        .map(|canonical| canonical.display().to_string())
        .unwrap_or_else(|_| path.to_string())
}
