//! `checkpoint` to another file system (issue 15, item 7): every file would
//! be copied while writes are paused, so it is refused unless `--allow-copy`,
//! and then the text output says how much was copied while frozen.

use std::fs;

use crate::common::*;
use crate::resource_faults::Mount;
use lsmvault::ErrorCode;

#[test]
fn a_checkpoint_to_another_file_system_is_refused_unless_copying_is_allowed() {
    let work = tempfile::tempdir().unwrap();
    let Some(mount) = Mount::tmpfs(&work.path().join("other-fs"), "16m") else {
        return;
    };
    let db = work.path().join("db");
    fs::create_dir_all(&db).unwrap();
    fs::write(db.join("000010.sst"), seeded_bytes(10, 300_000)).unwrap();
    fs::write(db.join("000011.sst"), seeded_bytes(11, 200_000)).unwrap();
    fs::write(db.join("CURRENT"), "MANIFEST-000012\n").unwrap();
    fs::write(db.join("MANIFEST-000012"), b"manifest").unwrap();
    let repo = work.path().join("repo");
    let marker = work.path().join("froze");
    let freeze = format!("touch {}", marker.display());
    let destination = mount.point.join("ckpt");
    let arguments = |extra: &[&'static str]| {
        let mut all = vec![
            "checkpoint".to_string(),
            db.display().to_string(),
            destination.display().to_string(),
            "--freeze-cmd".to_string(),
            freeze.clone(),
            "--thaw-cmd".to_string(),
            "true".to_string(),
        ];
        all.extend(extra.iter().map(|text| text.to_string()));
        all
    };

    let refused_arguments = arguments(&[]);
    let refused_arguments: Vec<&str> = refused_arguments.iter().map(String::as_str).collect();
    let refused = lsmvault(&repo, &refused_arguments);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(
        refused.status.code(),
        Some(ErrorCode::InvalidArgument.exit_code()),
        "{stderr}"
    );
    assert_eq!(ErrorCode::InvalidArgument.exit_code(), 22);
    assert!(stderr.contains("another file system"), "{stderr}");
    assert!(
        stderr.contains(
            "put the destination on the same filesystem, or pass --allow-copy to copy while frozen"
        ),
        "{stderr}"
    );
    assert!(!marker.exists(), "refused before the writer was frozen");
    assert!(!destination.exists());

    let allowed_arguments = arguments(&["--allow-copy"]);
    let allowed_arguments: Vec<&str> = allowed_arguments.iter().map(String::as_str).collect();
    let text = lsmvault_ok(&repo, &allowed_arguments);
    assert!(marker.exists());
    assert!(
        text.contains("copied while frozen (another file system, --allow-copy): 2 files"),
        "{text}"
    );
    for name in ["000010.sst", "000011.sst", "CURRENT", "MANIFEST-000012"] {
        assert_eq!(
            fs::read(db.join(name)).unwrap(),
            fs::read(destination.join(name)).unwrap(),
            "{name}"
        );
    }

    // The same file system still links, and says nothing of frozen copies.
    let beside = work.path().join("beside");
    let text = lsmvault_ok(
        &repo,
        &["checkpoint", db.to_str().unwrap(), beside.to_str().unwrap()],
    );
    assert!(!text.contains("copied while frozen"), "{text}");
    assert!(text.contains("2 linked"), "{text}");
}
