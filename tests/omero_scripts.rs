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

/// omero-py's virtualenv (`scripts/setup-omero-py`).
fn omero_python() -> std::path::PathBuf {
    let p = std::env::var_os("BIOMERO_STAGE_OMERO_PYTHON").map_or_else(
        || stage_tests::repo_root().join("target/omero-pyenv/bin/python"),
        std::path::PathBuf::from,
    );
    assert!(
        p.exists(),
        "{} is missing: the drop-in OMERO scripts are loaded with omero-py; run `scripts/test` (it runs scripts/setup-omero-py) or set BIOMERO_STAGE_OMERO_PYTHON",
        p.display()
    );
    p
}

/// The scripts, parsed by omero-py as the OMERO server parses them, declare what
/// biomero-scripts 2.8.2 declares, and each configured workflow's block from the daemon.
#[test]
fn omero_py_loads_the_drop_in_scripts_with_biomeros_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let port = stage_tests::free_port();
    let queue = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("q.sqlite").display()
    );
    let settings = stage_tests::write_daemon_settings(dir.path(), &queue, port, "");
    let d = stage_tests::Daemon::start(dir.path(), &settings, port, &[], &[]);
    let out = Command::new(omero_python())
        .arg(stage_tests::repo_root().join("omero-scripts/tests/omero_parse.py"))
        .env("PYTHONPATH", stage_tests::repo_root().join("omero-scripts"))
        .env("BIOMERO_STAGE_URL", &d.base)
        .env("BIOMERO_STAGE_TOKEN_FILE", dir.path().join("admin-token"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(v["problems"], serde_json::json!([]), "{v}");
    assert!(out.status.success(), "{v}");
    let run = &v["scripts"]["SLURM_Run_Workflow.py"];
    assert_eq!(run["name"], "SLURM_Run_Workflow.py");
    let wf = &run["workflow_inputs"];
    assert_eq!(wf["cellpose"]["grouping"], "03", "{wf}");
    assert_eq!(
        wf["cellpose_Version"]["values"],
        serde_json::json!(["v1.4.0"]),
        "{wf}"
    );
    assert_eq!(wf["cellpose_|_diameter"]["grouping"], "03.1", "{wf}");
    assert_eq!(
        v["scripts"]["SLURM_Init_environment.py"]["name"],
        "Slurm Init (Admin Only)"
    );
    assert_eq!(
        v["scripts"]["SLURM_check_setup.py"]["name"],
        "Slurm Check Setup (Admin Only)"
    );
}
