//! The library's module structure stays as `docs/architecture.md` draws it:
//! no import cycle, no operation importing another, nothing below `ops/`
//! importing it (checked by `scripts/check_layers.py`).

use std::process::Command;

use crate::common::*;

#[test]
fn modules_keep_their_layers() {
    if !tools_available(&["python3"]) {
        return;
    }
    let root = source_root();
    let output = Command::new("python3")
        .arg(root.join("scripts/check_layers.py"))
        .arg(root.join("crates/lsmvault/src"))
        .output()
        .expect("running scripts/check_layers.py");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}");
    assert!(report.contains(" 0 problems"), "{report}");
}
