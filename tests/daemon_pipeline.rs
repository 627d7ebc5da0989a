//! The daemon runs the plan and stage steps of real submissions, from the
//! shared storage and from the test OMERO; `plan` and `stage` on the command
//! line; and a daemon killed with SIGKILL in the middle of staging continues
//! after restart without redoing finished outputs or duplicating anything.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stage_tests::omero::{OmeroSite, PASSWORD, ids, omero_site};
use stage_tests::{Daemon, command, http_post, text, wait_submission};

type Site = OmeroSite;

/// The standard world with no cluster (the pipeline stops after staging), small tiles.
fn site(size: u32) -> Site {
    omero_site(size, "omero_tile_size = 64\nomero_concurrency = 2\n")
}

fn start(s: &Site, extra_args: &[&str]) -> Daemon {
    Daemon::start(
        s.dir.path(),
        &s.settings,
        s.port,
        extra_args,
        &[("BIOMERO_STAGE_OMERO_PASSWORD", PASSWORD)],
    )
}

fn steps(v: &Value) -> Vec<(String, String)> {
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["step"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The submission was planned and staged once; the upload that follows finds no cluster
/// (this test's ssh config sends the `slurm` alias to a closed port) and is retried.
fn assert_staged_then_upload_tried(v: &Value, id: &str) {
    let st: Vec<String> = steps(v).iter().map(|(a, b)| format!("{a}:{b}")).collect();
    let first_upload = st
        .iter()
        .position(|e| e.starts_with("upload:"))
        .unwrap_or(st.len());
    assert_eq!(
        st[..first_upload].last().map(String::as_str),
        Some("stage:succeeded"),
        "{id}: {st:?}"
    );
    assert!(
        st[first_upload..].iter().all(|e| e == "upload:retrying"),
        "{id}: {st:?}"
    );
    // the reason is read from the retry's own event: the submission's `error` is cleared
    // while the next attempt runs
    for e in v["events"].as_array().into_iter().flatten() {
        if e["step"] == "upload" && e["outcome"] == "retrying" {
            let error = e["detail"]["error"].as_str().unwrap_or_default();
            assert!(error.contains("cannot connect to `slurm`"), "{id}: {e}");
        }
    }
}

fn staged_dir(s: &Site, id: &str) -> PathBuf {
    s.dir.path().join("state/staging").join(id).join("data/in")
}

fn finished_outputs(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn submissions_from_the_shared_storage_and_omero_are_planned_and_staged() {
    let s = site(96);
    let d = start(&s, &["--poll-ms", "200"]);
    let plate = s.data.samples_a.join("plate.ome.zarr");
    let r = http_post(
        &d.base,
        "/api/v1/submissions",
        &json!({
            "version": 1, "id": "fs-plate", "workflow": "plate-threshold",
            "inputs": {"paths": [plate.display().to_string()]},
            "user": {"name": "alice", "group": "Lab A"}
        }),
    );
    assert_eq!(r["created"], true, "{r}");
    let r = http_post(
        &d.base,
        "/api/v1/submissions",
        &json!({
            "version": 1, "id": "omero-ds", "workflow": "cellpose",
            "inputs": {"omero": [{"type": "Dataset", "id": ids::DATASET}]},
            "parameters": {"diameter": 20},
            "user": {"name": "alice", "group": "Lab A"}
        }),
    );
    assert_eq!(r["created"], true, "{r}");
    let r = http_post(
        &d.base,
        "/api/v1/submissions",
        &json!({
            "version": 1, "id": "other-group", "workflow": "cellpose",
            "inputs": {"omero": [{"type": "Dataset", "id": ids::DATASET_OTHER_GROUP}]},
            "user": {"name": "alice", "group": "Lab A"}
        }),
    );
    assert_eq!(r["created"], true, "{r}");

    for id in ["fs-plate", "omero-ds"] {
        let v = wait_submission(&d, id, 60, |v| v["submission"]["state"] == "staged");
        assert_staged_then_upload_tried(&v, id);
        let data = &v["submission"]["data"];
        assert!(data["plan"]["bytes"].as_u64().unwrap() > 0, "{data}");
        let manifest = PathBuf::from(data["stage"]["manifest"].as_str().unwrap());
        assert!(manifest.exists(), "{}", manifest.display());
    }
    assert_eq!(
        finished_outputs(&staged_dir(&s, "fs-plate")),
        ["synthetic_plate.zarr"]
    );
    assert_eq!(
        finished_outputs(&staged_dir(&s, "omero-ds")),
        [
            "kernels µ 3.0.tif",
            "nuclei 1.tif.0.tif",
            "nuclei [2].0.tif"
        ]
    );
    let v = wait_submission(&d, "other-group", 30, |v| v["submission"]["done"] == true);
    assert_eq!(v["submission"]["state"], "failed");
    assert!(
        v["submission"]["error"]
            .as_str()
            .unwrap()
            .contains("belongs to OMERO group `Lab B`"),
        "{v}"
    );
    let metrics = std::process::Command::new("curl")
        .args(["-fsS", &format!("{}/metrics", d.base)])
        .output()
        .unwrap();
    let m = String::from_utf8_lossy(&metrics.stdout);
    assert!(m.contains("direction=\"staged\""), "{m}");
    assert!(
        !d.log_text().contains(PASSWORD),
        "the OMERO password is never logged"
    );

    // the same from the command line: plan prints, stage writes
    let sub = s.dir.path().join("sub.json");
    std::fs::write(
        &sub,
        json!({
            "version": 1, "workflow": "zarr-cellpose",
            "inputs": {"omero": [{"type": "Image", "id": ids::IMG_TILES}], "paths": [s.data.samples_a.join("images/image_00.ome.zarr").display().to_string()]},
            "user": {"name": "alice", "group": "Lab A"}
        })
        .to_string(),
    )
    .unwrap();
    let cli = |args: &[&str]| {
        text(
            &command(s.dir.path())
                .env("BIOMERO_STAGE_OMERO_PASSWORD", PASSWORD)
                .args(["--config", &s.settings.display().to_string()])
                .args(args)
                .output()
                .unwrap(),
        )
    };
    let (code, out, err) = cli(&["plan", &sub.display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("kernels µ 3.zarr")
            && out.contains("pixel-service: OMERO Image")
            && out.contains("image_00.zarr"),
        "{out}"
    );
    let (code, out, err) = cli(&["plan", "--json", &sub.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    let plan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["images"].as_array().unwrap().len(), 2);
    let dest = s.dir.path().join("cli-stage");
    let (code, out, err) = cli(&[
        "stage",
        &sub.display().to_string(),
        "--out",
        &dest.display().to_string(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        finished_outputs(&dest.join("data/in")),
        ["image_00.zarr", "kernels µ 3.zarr"]
    );
    assert!(dest.join("stage-manifest.json").exists());
    let bad = s.dir.path().join("bad.json");
    std::fs::write(
        &bad,
        json!({"version": 1, "workflow": "cellpose", "inputs": {"paths": ["/etc/passwd"]}, "user": {"name": "a", "group": "Lab A"}}).to_string(),
    )
    .unwrap();
    let (code, _, err) = cli(&["plan", &bad.display().to_string()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("/etc/passwd") && err.contains("outside the data roots"),
        "{err}"
    );
}

#[test]
fn a_daemon_killed_while_staging_continues_after_restart_and_stages_everything_once() {
    let s = site(150);
    // 64² tiles, 2 in flight, 120 ms each: every field takes a few seconds
    s.omero
        .faults
        .tile_delay_ms
        .store(120, std::sync::atomic::Ordering::Relaxed);
    let args = ["--poll-ms", "200", "--lease-secs", "3"];
    let d = start(&s, &args);
    let r = http_post(
        &d.base,
        "/api/v1/submissions",
        &json!({
            "version": 1, "id": "crash", "workflow": "cellpose",
            "inputs": {"omero": [{"type": "Plate", "id": ids::PLATE_TILES}]},
            "user": {"name": "alice", "group": "Lab A"}
        }),
    );
    assert_eq!(r["created"], true, "{r}");
    let dir = staged_dir(&s, "crash");
    let started = Instant::now();
    while finished_outputs(&dir).is_empty() {
        assert!(
            started.elapsed() < Duration::from_mins(1),
            "nothing staged; log:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    d.signal("KILL");
    let before = finished_outputs(&dir);
    assert!(before.len() < 8, "killed in the middle: {before:?}");
    let inode =
        |n: &str| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(dir.join(n)).unwrap());
    let inodes: Vec<u64> = before.iter().map(|n| inode(n)).collect();
    drop(d);

    s.omero
        .faults
        .tile_delay_ms
        .store(0, std::sync::atomic::Ordering::Relaxed);
    let d = start(&s, &args);
    let v = wait_submission(&d, "crash", 90, |v| v["submission"]["state"] == "staged");
    let st = steps(&v);
    let count =
        |step: &str, outcome: &str| st.iter().filter(|(a, b)| a == step && b == outcome).count();
    assert_eq!(count("plan", "succeeded"), 1, "{st:?}");
    assert_eq!(count("stage", "succeeded"), 1, "{st:?}");
    assert_eq!(st.first().map(|x| x.0.as_str()), Some("intake"));
    assert_staged_then_upload_tried(&v, "crash");
    let after = finished_outputs(&dir);
    assert_eq!(after.len(), 8, "{after:?}");
    for (n, ino) in before.iter().zip(&inodes) {
        assert_eq!(
            inode(n),
            *ino,
            "{n} was staged before the kill and not written again"
        );
    }
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(
            dir.parent()
                .unwrap()
                .parent()
                .unwrap()
                .join("stage-manifest.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let kept = manifest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["how"] == "already-staged")
        .count();
    assert_eq!(kept, before.len(), "{manifest}");
    assert!(
        stage_tests::partial_files(&dir).is_empty(),
        "{:?}",
        stage_tests::partial_files(&dir)
    );
    // the pixels are right whichever daemon staged them
    let seen = stage_tests::run_reader("read_tiff.py", &[dir.join(&after[7]).as_os_str()]);
    let want: Value =
        serde_json::from_slice(&std::fs::read(s.data.samples_a.join("MANIFEST.json")).unwrap())
            .unwrap();
    // `Plate Tiles [Well B2, Field 2].0.tif`: the field's image, named as BIOMERO names it
    let name = &after[7];
    let well = name.split("[Well ").nth(1).unwrap();
    let (row, rest) = well.split_at(1);
    let column = rest.split(',').next().unwrap();
    let field: u32 = rest
        .split("Field ")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let rel = format!("plate.ome.zarr/{row}/{column}/{}", field - 1);
    let sha = want["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["path"] == rel)
        .unwrap()["sha256"]
        .clone();
    assert_eq!(seen["sha256_tczyx"], sha, "{rel}");
}

/// On a site without the pixel service, an image only OMERO itself can read is exported by
/// OMERO's exporter (`omero_export_command`, here the stand-in for `omero zarr export`):
/// `plan` says why each earlier source did not apply; what the exporter printed is in the
/// submission's history with the session key blotted out; the staged TIFF holds the image.
#[test]
fn an_image_only_omero_can_read_is_exported_with_its_lines_in_the_history() {
    let probe = stage_tests::omero::omero_site_with(96, "", false);
    let cfg = probe.dir.path().join("fake-exporter.json");
    let log = probe.dir.path().join("fake-exporter.log");
    std::fs::write(
        &cfg,
        json!({
            "sources": {ids::IMG_ORIGINAL_CZI.to_string(): probe.data.samples_a.join("images/image_02.ome.zarr")},
            "modes": {}, "log": log, "sleep": 0, "colors": ["FF0000", "FFFF00"],
        })
        .to_string(),
    )
    .unwrap();
    let exporter: Vec<String> = [
        stage_tests::python().display().to_string(),
        stage_tests::repo_root()
            .join("tests/readers/fake_omero_zarr.py")
            .display()
            .to_string(),
        "--fake-config".into(),
        cfg.display().to_string(),
    ]
    .into_iter()
    .chain(
        [
            "zarr",
            "-s",
            "{server}",
            "-k",
            "{session}",
            "-g",
            "{group}",
            "export",
            "--output",
            "{output}",
            "--format",
            "{format}",
            "Image:{image}",
        ]
        .map(String::from),
    )
    .collect();
    // the settings name the exporter; the probe site's files are reused
    let extra = format!(
        "omero_export_command = {}\nomero_server = \"omeroserver:4064\"\n",
        serde_json::to_string(&exporter).unwrap()
    );
    let mut settings = std::fs::read_to_string(&probe.settings).unwrap();
    settings.push_str(&extra);
    std::fs::write(&probe.settings, settings).unwrap();
    let s = probe;
    let d = start(&s, &["--poll-ms", "200"]);
    let sub = json!({
        "version": 1, "id": "exported", "workflow": "cellpose",
        "inputs": {"omero": [{"type": "Image", "id": ids::IMG_ORIGINAL_CZI}]},
        "user": {"name": "alice", "group": "Lab A"}
    });
    let file = s.dir.path().join("exported.json");
    std::fs::write(&file, sub.to_string()).unwrap();
    let (code, out, err) = text(
        &command(s.dir.path())
            .env("BIOMERO_STAGE_OMERO_PASSWORD", PASSWORD)
            .args(["--config", &s.settings.display().to_string(), "plan"])
            .arg(&file)
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("from omero-export; not from zarr: OMERO knows no OME-Zarr")
            && out.contains("pixel-service: pixel_buffer_url is not set"),
        "{out}"
    );
    let r = http_post(&d.base, "/api/v1/submissions", &sub);
    assert_eq!(r["created"], true, "{r}");
    let v = wait_submission(&d, "exported", 120, |v| {
        v["submission"]["state"] == "staged" || v["submission"]["done"] == true
    });
    assert_staged_then_upload_tried(&v, "exported");
    let noted: Vec<&Value> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["step"] == "stage" && e["outcome"] == "noted")
        .collect();
    let lines = noted
        .iter()
        .map(|e| e["detail"]["exporter"].to_string())
        .collect::<String>();
    assert!(
        lines.contains("Exporting to") && lines.contains("Finished.") && lines.contains("***"),
        "{v}"
    );
    let key = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .split(' ')
        .nth(3)
        .unwrap()
        .to_owned();
    assert!(!v.to_string().contains(&key) && !d.log_text().contains(&key));
    let tiff = staged_dir(&s, "exported").join("scan.czi [0].0.tif");
    let seen = stage_tests::run_reader("read_tiff.py", &[tiff.as_os_str()]);
    let want: Value =
        serde_json::from_slice(&std::fs::read(s.data.samples_a.join("MANIFEST.json")).unwrap())
            .unwrap();
    let sha = want["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["path"] == "images/image_02.ome.zarr")
        .unwrap()["sha256"]
        .clone();
    assert_eq!(seen["sha256_tczyx"], sha);
}
