//! Helpers shared by the integration tests: where the repository and the
//! `biomero-stage` binary are, and how to run the binary in a clean environment.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The `biomero-stage` binary built for this test run (`target/<profile>/biomero-stage`).
pub fn bin_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test-binary>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| repo_root().join("target/debug"), Path::to_path_buf);
    let bin = profile_dir.join("biomero-stage");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (which builds it) or `cargo build -p biomero-stage` first",
        bin.display()
    );
    bin
}

/// A `biomero-stage` command with an empty environment apart from `PATH` and the given `HOME`.
pub fn command(home: &Path) -> Command {
    let mut c = Command::new(bin_path());
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("RUST_BACKTRACE", "0");
    c
}

/// Output of a finished command as text: (exit code, stdout, stderr).
pub fn text(o: &Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Writes a settings file for tests: offline, pinned descriptors, state in `dir`.
pub fn write_settings(dir: &Path, importer_enabled: bool) -> PathBuf {
    let path = dir.join("biomero-stage.toml");
    let body = format!(
        "state_dir = \"{state}\"\nimporter_enabled = {importer_enabled}\ndescriptor_dirs = [\"{descriptors}\"]\ndescriptor_fetch = false\n",
        state = dir.join("state").display(),
        descriptors = repo_root().join("config/descriptors").display(),
    );
    std::fs::write(&path, body).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

/// The Python interpreter of the independent readers' virtualenv.
///
/// `BIOMERO_STAGE_PYTHON` if set, else `target/pyenv/bin/python` (what `scripts/test` creates).
pub fn python() -> PathBuf {
    let p = std::env::var_os("BIOMERO_STAGE_PYTHON").map_or_else(
        || repo_root().join("target/pyenv/bin/python"),
        PathBuf::from,
    );
    assert!(
        p.exists(),
        "{} is missing: the interop tests read our output with tifffile, zarr-python, ome-zarr-py and ome-zarr-models; run `scripts/test` (it creates the virtualenv from tests/readers/requirements.txt) or set BIOMERO_STAGE_PYTHON",
        p.display()
    );
    p
}

/// Runs `tests/readers/<script>` with `args` and parses the JSON it prints (last line).
pub fn run_reader(script: &str, args: &[&std::ffi::OsStr]) -> serde_json::Value {
    let out = Command::new(python())
        .arg(repo_root().join("tests/readers").join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {script}: {e}"));
    let (code, stdout, stderr) = text(&out);
    assert_eq!(code, 0, "{script} {args:?} failed:\n{stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {stdout}\n{stderr}"))
}

/// Files under `dir` whose names mark them as half-written.
pub fn partial_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().contains(".partial") {
                out.push(p.clone());
            }
            if p.is_dir() {
                out.extend(partial_files(&p));
            }
        }
    }
    out
}
