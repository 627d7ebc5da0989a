//! The drop-in OMERO scripts' Python tests (`omero-scripts/tests`): their parameter
//! declarations against biomero-scripts 2.8.2's, their settings and messages.

#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn the_omero_scripts_python_tests_pass() {
    let dir = stage_tests::repo_root().join("omero-scripts");
    let out = Command::new(stage_tests::python())
        .args(["-m", "unittest", "discover", "-s", "tests", "-v"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("Ran ") && !err.contains("Ran 0 tests"),
        "{err}"
    );
}
