//! The demo, as a newcomer runs it: `biomero-stage demo` on an empty folder
//! runs one submission per input mode through the daemon on SQLite with the
//! local executor, to labels kept in the group's `.analyzed` folder. The labels
//! are counted by independent readers (tifffile, zarr-python) and compared with
//! the workflow's report and with the sample's own ground-truth cells.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use stage_tests::drills::Drill;
use stage_tests::{command, run_reader, text};

/// The kept result folders (`<analyzed>/<submission>/<stamp>`), by submission id.
fn kept(dir: &Path) -> Vec<(String, PathBuf)> {
    let analyzed = dir.join("data/demo/.analyzed");
    let mut out = Vec::new();
    for s in std::fs::read_dir(&analyzed).unwrap().flatten() {
        for stamp in std::fs::read_dir(s.path()).unwrap().flatten() {
            out.push((s.file_name().to_string_lossy().into_owned(), stamp.path()));
        }
    }
    out.sort();
    out
}

/// Output meant for people: at most 100 columns, and no Rust `Debug` text in it.
fn assert_for_people(out: &str) {
    for line in out.lines() {
        assert!(
            line.chars().count() <= 100,
            "{} columns: {line}",
            line.chars().count()
        );
        for debug in [
            "Some(", "None", "Ok(", "Err(", " { label", "PathBuf", "\\\"",
        ] {
            assert!(!line.contains(debug), "`{debug}` in: {line}");
        }
    }
}

fn status(dir: &Path, args: &[&str]) -> Value {
    let o = command(dir)
        .arg("--config")
        .arg(dir.join("demo/biomero-stage.toml"))
        .args(["status", "--json"])
        .args(args)
        .output()
        .unwrap();
    let (code, out, err) = text(&o);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn the_demo_runs_each_input_mode_to_kept_labels_that_independent_readers_count() {
    let home = tempfile::tempdir().unwrap();
    let demo = home.path().join("demo");
    let o = command(home.path())
        .args(["demo", "--dir"])
        .arg(&demo)
        .output()
        .unwrap();
    let (code, out, err) = text(&o);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(out.matches("collected ✓").count(), 3, "{out}");
    assert_for_people(&out);
    let sample: Value = serde_json::from_slice(
        &std::fs::read(demo.join("data/demo/sample/MANIFEST.json")).unwrap(),
    )
    .unwrap();
    let plate = sample["plate"].as_str().unwrap();
    let cells = |in_plate: bool| -> u64 {
        sample["images"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["path"].as_str().unwrap().starts_with(plate) == in_plate)
            .map(|i| i["labels"]["objects"].as_u64().unwrap())
            .sum()
    };
    let runs = kept(&demo);
    assert_eq!(runs.len(), 3, "{runs:?}");
    let mut drill = Drill::new("demo: one run per input mode, labels counted");
    for (id, dir) in &runs {
        let report: Value =
            serde_json::from_slice(&std::fs::read(dir.join("threshold-report.json")).unwrap())
                .unwrap();
        let mut found = 0;
        for img in report["images"].as_array().unwrap() {
            let rel = img["output"].as_str().unwrap();
            let objects = img["objects"].as_u64().unwrap();
            found += objects;
            let counted = if id.starts_with("demo-tiff-") {
                let f = dir.join(rel);
                run_reader("count_labels.py", &[f.as_os_str()])[f.display().to_string()][""].clone()
            } else {
                // `<store>` or `<store>/<row>/<col>/<field>`; the label renamed `threshold.zarr` on return
                let (store, field) = rel.split_once('/').unwrap_or((rel, ""));
                let p = dir.join(store);
                run_reader("count_labels.py", &[p.as_os_str()])[field]["threshold.zarr"].clone()
            };
            assert_eq!(counted.as_u64(), Some(objects), "{id} {rel}");
        }
        // the threshold finds nearly every cell of the ground truth (touching cells merge)
        let truth = cells(id.starts_with("demo-zarr-plate-"));
        assert!(
            found * 10 >= truth * 8 && found <= truth,
            "{id}: {found} objects for {truth} cells"
        );
        // every returned Zarr is valid OME-Zarr for ome-zarr-models
        if !id.starts_with("demo-tiff-") {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                if e.file_name().to_string_lossy().ends_with(".zarr") {
                    let r = run_reader("read_zarr.py", &[e.path().as_os_str()]);
                    assert!(r["model"].as_str().is_some(), "{r}");
                }
            }
        }
        drill.trial(true);
    }
    // nothing left behind on the "cluster" or in staging
    assert_eq!(
        std::fs::read_dir(demo.join("cluster/data"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(demo.join("state/staging"))
            .unwrap()
            .count(),
        0
    );
    // `status` keeps the history; a second run reuses the sample and adds three runs
    let id = &runs[0].0;
    let h = status(home.path(), &[id]);
    let steps: Vec<&str> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "intake", "plan", "stage", "upload", "submit", "follow", "collect"
        ],
        "{h}"
    );
    // the same history for people: one screen wide, details summarised
    let settings = demo.join("biomero-stage.toml");
    for args in [vec!["status", id.as_str()], vec!["status"]] {
        let o = command(home.path())
            .arg("--config")
            .arg(&settings)
            .args(&args)
            .output()
            .unwrap();
        let (code, out, err) = text(&o);
        assert_eq!(code, 0, "{out}{err}");
        assert_for_people(&out);
    }
    let plate = demo
        .join("data/demo/sample")
        .join(sample["plate"].as_str().unwrap());
    let o = command(home.path())
        .arg("inspect")
        .arg(&plate)
        .output()
        .unwrap();
    let (_, out, err) = text(&o);
    assert!(out.contains(": plate, Zarr v"), "{out}{err}");
    assert_for_people(&out);
    let o = command(home.path())
        .args(["demo", "--dir"])
        .arg(&demo)
        .output()
        .unwrap();
    assert!(o.status.success(), "{:?}", text(&o));
    let all = status(home.path(), &[]);
    let states: Vec<&str> = all["submissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["collected"; 6], "{all}");
    // check-setup on the demo's local executor looks at this host's folders, not over SSH
    let o = command(home.path())
        .arg("--config")
        .arg(demo.join("biomero-stage.toml"))
        .args(["check-setup", "--json"])
        .output()
        .unwrap();
    let (_, out, err) = text(&o);
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    assert!(
        report["host"].as_str().unwrap().contains("local"),
        "{report}"
    );
    let folders = report["folders"].as_array().unwrap();
    assert!(!folders.is_empty(), "{report}");
    assert!(
        folders.iter().any(|f| f["role"] == "slurm_data_path"
            && f["exists"] == true
            && f["writable"] == true),
        "the demo's cluster data folder is found on this host: {report}"
    );
}

#[test]
fn a_cancelled_submission_stops_its_local_job() {
    let home = tempfile::tempdir().unwrap();
    let site = home.path().join("site");
    let o = command(home.path())
        .args(["demo", "--write-only", "--dir"])
        .arg(&site)
        .output()
        .unwrap();
    assert!(o.status.success(), "{:?}", text(&o));
    // a workflow that runs for ten minutes
    let scripts = site.join("cluster/scripts");
    let slow = scripts.join("slow.sh");
    std::fs::write(&slow, "#!/bin/sh\necho 'working 5%'\nsleep 600\n").unwrap();
    std::fs::set_permissions(&slow, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let ini = site.join("slurm-config.ini");
    let body = std::fs::read_to_string(&ini).unwrap().replace(
        "[WORKFLOWS]\n",
        "[WORKFLOWS]\nslow = slow\nslow_repo = https://github.com/biomero-stage/W_Threshold/tree/v1.0.0\nslow_job = slow.sh\n",
    );
    std::fs::write(&ini, body).unwrap();
    let port = stage_tests::free_port();
    let settings = site.join("biomero-stage.toml");
    let body = std::fs::read_to_string(&settings).unwrap();
    let line = body
        .lines()
        .find(|l| l.starts_with("admin_listen"))
        .unwrap()
        .to_owned();
    std::fs::write(
        &settings,
        body.replace(&line, &format!("admin_listen = \"127.0.0.1:{port}\"")),
    )
    .unwrap();
    let ini_s = ini.display().to_string();
    let d = stage_tests::Daemon::start(
        home.path(),
        &settings,
        port,
        &["--poll-ms", "200"],
        &[("BIOMERO_SLURM_CONFIG_FILE", &ini_s)],
    );
    let doc = site.join("slow.json");
    let image = site.join("data/demo/sample/images/image_00.ome.zarr");
    std::fs::write(
        &doc,
        serde_json::json!({
            "version": 1, "id": "slow-1", "workflow": "slow",
            "inputs": {"paths": [image.display().to_string()]},
            "user": {"name": "demo", "group": "demo"},
        })
        .to_string(),
    )
    .unwrap();
    let cli = |args: &[&str]| {
        let o = command(home.path())
            .arg("--config")
            .arg(&settings)
            .env("BIOMERO_SLURM_CONFIG_FILE", &ini)
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {:?}", text(&o));
    };
    cli(&["submit", &doc.display().to_string()]);
    let v = stage_tests::wait_submission(&d, "slow-1", 60, |v| {
        v["submission"]["state"] == "submitted"
    });
    let pid_file = site.join("cluster/data/biomero_slow-1/.local-pid");
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_owned();
    assert!(Path::new(&format!("/proc/{pid}")).exists(), "{v}");
    cli(&["cancel", "slow-1"]);
    let v = stage_tests::wait_submission(&d, "slow-1", 60, |v| v["submission"]["done"] == true);
    assert_eq!(v["submission"]["state"], "cancelled", "{v}");
    // the job's process group is gone (its `sleep` too)
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let stat = format!("/proc/{pid}/stat");
    while std::fs::read_to_string(&stat).is_ok_and(|s| !s.contains(") Z ")) {
        assert!(
            std::time::Instant::now() < until,
            "local job {pid} still runs"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let exit =
        std::fs::read_to_string(site.join("cluster/data/biomero_slow-1/.local-exit")).unwrap();
    assert_eq!(exit.trim(), "143");
}
