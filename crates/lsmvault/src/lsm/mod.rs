//! What lsmvault knows about LSM databases: the LevelDB/RocksDB log format,
//! write batches, the MANIFEST's last sequence, file classes and live
//! checkpoints of a database directory.
//!
//! Nothing here knows about repositories: the backup, the WAL archive and
//! point-in-time recovery call in. The readers of database files (the log,
//! write batches, the MANIFEST) take byte slices and report damage as values
//! or errors, never as a panic, whatever the bytes (the fuzz targets hold them
//! to it); the one function here that opens a database file
//! ([`read_regular_file`]) never follows a symlink nor blocks on a FIFO
//! named like one. The only writers are [`checkpoint::checkpoint`] (and its
//! [`checkpoint::link_checkpoint`]), which write nothing outside the new
//! directory they create, and [`writer_pause`], which creates and removes the
//! pause file a topology names (and signals the process a pid file names).

pub mod checkpoint;
pub mod file_class;
pub mod log;
pub mod manifest;
pub mod pause;
pub mod write_batch;
pub mod writer_pause;

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The content of `path` if it is a regular file, `None` if it is anything
/// else: opened without following a symlink and without blocking on a FIFO,
/// and checked on the opened file (what is read is what was checked).
pub fn read_regular_file(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path);
    let mut file = match opened {
        Ok(file) => file,
        // ELOOP: a symlink; ENXIO: a socket, or a FIFO nobody writes to.
        Err(error)
            if matches!(
                error.raw_os_error(),
                Some(nix::libc::ELOOP | nix::libc::ENXIO)
            ) =>
        {
            return Ok(None)
        }
        Err(error) => return Err(error),
    };
    let stat = file.metadata()?;
    if !stat.file_type().is_file() {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(stat.len() as usize);
    std::io::Read::read_to_end(&mut file, &mut bytes)?;
    Ok(Some(bytes))
}
