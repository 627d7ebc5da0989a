//! Live reload through `biomero-stage config watch`, the same machinery the
//! daemon uses: an Admin-tab save changes a workflow's mode within a second, a
//! broken save keeps the last good configuration (and says why), SIGHUP reloads.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use stage_tests::{command, write_settings};

const BASE: &str = "[SSH]\nhost = slurm\n[WORKFLOWS]\ncellpose = cellpose\ncellpose_repo = https://github.com/TorecLuik/W_NucleiSegmentation-Cellpose/tree/v1.4.0\n";

struct Watch {
    child: Child,
    lines: mpsc::Receiver<Value>,
}

impl Watch {
    fn start(dir: &Path, ini: &Path) -> Watch {
        let settings = write_settings(dir, true);
        let mut child = command(dir)
            .args([
                "--config",
                settings.to_str().unwrap(),
                "config",
                "watch",
                "--json",
            ])
            .env("BIOMERO_SLURM_CONFIG_FILE", ini)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && tx.send(v).is_err()
                {
                    break;
                }
            }
        });
        Watch { child, lines }
    }

    fn next(&self, within: Duration) -> Value {
        self.lines
            .recv_timeout(within)
            .unwrap_or_else(|_| panic!("no report within {within:?}"))
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Saves like an editor or the Admin tab: write a temporary file, rename it over.
fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn toggling_zarr_in_the_file_changes_the_mode_within_a_second_and_a_broken_save_keeps_the_old_one()
{
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("slurm-config.ini");
    std::fs::write(&ini, BASE).unwrap();
    let w = Watch::start(dir.path(), &ini);
    let first = w.next(Duration::from_secs(20));
    assert_eq!(first["modes"]["cellpose"], "tiff", "{first}");
    assert_eq!(first["generation"], 1);
    std::thread::sleep(Duration::from_millis(200)); // the watcher is installed after the first report

    // The Admin tab toggles "Zarr Workflow" for cellpose.
    let saved = Instant::now();
    save(
        &ini,
        &format!("{BASE}[UI]\nzarr_workflows = [\"cellpose\"]\n"),
    );
    let second = w.next(Duration::from_secs(5));
    let took = saved.elapsed();
    assert_eq!(second["modes"]["cellpose"], "zarr", "{second}");
    assert_eq!(second["generation"], 2);
    assert!(took < Duration::from_secs(1), "mode changed after {took:?}");

    // A save that breaks the file: the old configuration stays, the error is shown.
    std::fs::write(&ini, format!("{BASE}[UI]\nzarr_workflows = cellpose\n")).unwrap();
    let failed = w.next(Duration::from_secs(5));
    assert_eq!(failed["generation"], 2, "{failed}");
    let err = failed["error"].as_str().unwrap();
    assert!(
        err.contains("slurm-config.ini:7") && err.contains("JSON list"),
        "{err}"
    );

    // Fixing it (plate toggle now) takes effect again.
    save(
        &ini,
        &format!("{BASE}[UI]\nplate_workflows = [\"cellpose\"]\n"),
    );
    let third = w.next(Duration::from_secs(5));
    assert_eq!(third["generation"], 3);
    assert_eq!(third["modes"]["cellpose"], "zarr-plate");
}

#[test]
fn sighup_reloads_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("slurm-config.ini");
    std::fs::write(&ini, BASE).unwrap();
    let w = Watch::start(dir.path(), &ini);
    assert_eq!(w.next(Duration::from_secs(20))["generation"], 1);
    let status = std::process::Command::new("kill")
        .args(["-HUP", &w.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let next = w.next(Duration::from_secs(5));
    assert_eq!(next["generation"], 2, "{next}");
    assert_eq!(next["modes"]["cellpose"], "tiff");
}
