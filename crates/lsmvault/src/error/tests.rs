//! Error classification: codes of file-system conditions wherever they arose.

use super::*;

fn os_error(errno: nix::errno::Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(errno as i32)
}

#[test]
fn full_and_read_only_file_systems_get_their_own_codes_wherever_the_error_arose() {
    use nix::errno::Errno;
    let target = Error::io("writing /target/a.sst", os_error(Errno::ENOSPC));
    assert_eq!(target.code(), ErrorCode::NoSpace);
    let quota = Error::io("writing /target/a.sst", os_error(Errno::EDQUOT));
    assert_eq!(quota.code(), ErrorCode::NoSpace);
    let repository = Error::from(backend::Error::other(
        backend::Subject::Location,
        "creating /repo/locks/x",
        os_error(Errno::EROFS),
    ));
    assert_eq!(repository.code(), ErrorCode::ReadOnlyFilesystem);
    let restore = Error::RestoreIncomplete {
        failed: 1,
        restored: 0,
        first_path: PathBuf::from("a.sst"),
        first: Box::new(target),
    };
    assert_eq!(restore.code(), ErrorCode::NoSpace);
    // Other operating-system errors stay plain I/O.
    let denied = Error::io("reading /db/a.sst", os_error(Errno::EACCES));
    assert_eq!(denied.code(), ErrorCode::Io);
    assert!(!repository.is_damage());
}
