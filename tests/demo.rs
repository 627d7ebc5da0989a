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
}
