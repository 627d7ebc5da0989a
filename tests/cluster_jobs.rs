//! Real jobs on the local single-node Slurm, submitted by the daemon over SSH:
//! upload → sbatch with BIOMERO's job environment → follow → download, with
//! values that try shell injection arriving literally; jobs that fail, time
//! out, write nothing, or carry an sbatch parameter Slurm rejects fail with
//! their reason; a cancelled submission `scancel`s its job; `init` and
//! `check-setup` (CLI and HTTP) against the same cluster; a plate job whose
//! results come home: kept under the group's `.analyzed/`, its labels ordered
//! into BIOMERO.importer's `imports` table and completed by a test importer
//! loop, the job's folder and log removed from the cluster afterwards.

#![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]

use std::path::Path;

use serde_json::{Value, json};
use stage_tests::cluster::kill_ssh_master;
use stage_tests::drills::Drill;
use stage_tests::site::{
    Site, assert_each_step_once, assert_one_job_each, cluster_now, outcomes, site, start, state,
    submit, submit_plate, use_queue, write_sample,
};
use stage_tests::{
    Daemon, TestImporter, command, free_port, http_get, http_post, importer_db, psql, run_reader,
    text, wait_submission,
};

/// A label that would run commands if it ever reached a shell unquoted.
fn hostile_label(markers: &Path) -> String {
    let m = markers.display();
    format!(
        "a; touch {m}/semicolon $(touch {m}/dollar) `touch {m}/backtick` 'single' \"double\" \\ back\nnew line && touch {m}/and"
    )
}

fn assert_no_markers(markers: &Path) {
    let left: Vec<_> = std::fs::read_dir(markers)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        left.is_empty(),
        "a value was executed on the cluster: {left:?}"
    );
}

fn run_copy(s: &Site, id: &str) -> (Value, String) {
    let markers = s.abs.join("markers");
    std::fs::create_dir_all(&markers).unwrap();
    s.lab.chown(&markers);
    let label = hostile_label(&markers);
    let d = start(s, &[]);
    submit(
        &d,
        id,
        "copy",
        &s.image,
        json!({"label": label, "threshold": 0.75, "invert": true}),
        json!({"keep_remote_data": true}),
    );
    let v = wait_submission(&d, id, 120, |v| {
        matches!(state(v), "collected" | "failed" | "cancelled")
    });
    assert_eq!(state(&v), "collected", "{v}\n{}", d.log_text());
    // the pipeline waits at import (a later capability), after everything of this issue ran
    let ev = outcomes(&v);
    for want in [
        "upload:succeeded",
        "submit:succeeded",
        "follow:succeeded",
        "collect:succeeded",
    ] {
        assert!(ev.contains(&want.to_owned()), "{want} missing in {ev:?}");
    }
    let metrics = std::process::Command::new("curl")
        .args(["-sS", &format!("{}/metrics", d.base)])
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout).into_owned();
    for dir in ["uploaded", "downloaded"] {
        let line = metrics
            .lines()
            .find(|l| l.contains(&format!("direction=\"{dir}\"")))
            .unwrap_or_else(|| panic!("no {dir} bytes in /metrics:\n{metrics}"));
        let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(n > 0.0, "{line}");
    }
    // the value arrived byte for byte and ran nothing
    let job = s.abs.join(format!("data/biomero_{id}"));
    assert_eq!(
        std::fs::read_to_string(job.join("data/out/label.txt")).unwrap(),
        label
    );
    assert_no_markers(&markers);
    // the inputs went to data/in; data/gt exists; the outputs came back identical
    let staged_tif = job.join("data/in/image_00.tif");
    assert!(staged_tif.exists(), "no {}", staged_tif.display());
    assert!(job.join("data/gt").is_dir());
    let local_out = s.dir.path().join(format!("state/staging/{id}/data/out"));
    assert_eq!(
        std::fs::read(local_out.join("image_00.tif")).unwrap(),
        std::fs::read(&staged_tif).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(local_out.join("label.txt")).unwrap(),
        label
    );
    let env = std::fs::read_to_string(local_out.join("job-env.txt")).unwrap();
    drop(d);
    (v, env)
}

#[test]
fn a_job_runs_with_biomeros_environment_and_hostile_values_arrive_literally() {
    let s = site("copy", "", "");
    let (v, env) = run_copy(&s, "copy-1");
    let data_path = format!("DATA_PATH={}/data/biomero_copy-1", s.rel);
    for want in [
        data_path.as_str(),
        &format!("IMAGE_PATH={}/images/copy", s.rel),
        "IMAGE_VERSION=v1.0.0",
        "SINGULARITY_IMAGE=w_copy_v1.0.0.sif",
        &format!("SCRIPT_PATH={}/scripts", s.rel),
        "APPTAINER_BINDPATH=/data/bind",
        "THRESHOLD=0.75",
        "INVERT=True",
    ] {
        assert!(
            env.lines().any(|l| l == want),
            "{want} not in the job's environment:\n{env}"
        );
    }
    let job_id = v["submission"]["data"]["submit"]["job_id"]
        .as_u64()
        .unwrap();
    assert_eq!(s.lab.sacct_state(job_id), "COMPLETED");
    // the job log sits where BIOMERO keeps it
    assert!(s.lab.home.join(format!("omero-{job_id}.log")).exists());
}

#[test]
fn an_env_file_carries_the_environment_and_jobs_are_followed_without_accounting() {
    let s = site(
        "envfile",
        "env_file_submission = true",
        "slurm_accounting = false",
    );
    let (v, env) = run_copy(&s, "envfile-1");
    assert!(env.contains("THRESHOLD=0.75"), "{env}");
    let file = v["submission"]["data"]["submit"]["env_file"]
        .as_str()
        .unwrap();
    assert!(s.lab.home.join(file).exists(), "no env file {file}");
}

#[test]
fn failing_timed_out_empty_and_rejected_jobs_fail_with_their_reason() {
    let s = site("fail", "", "");
    let d = start(&s, &[]);
    for (id, wf) in [
        ("f-fail", "fail"),
        ("f-timeout", "timeout"),
        ("f-empty", "empty"),
        ("f-badpart", "badpart"),
    ] {
        submit(&d, id, wf, &s.image, json!({}), json!({}));
    }
    let done = |id: &str| {
        wait_submission(&d, id, 240, |v| {
            matches!(state(v), "failed" | "collected" | "cancelled")
        })
    };
    let error = |v: &Value| {
        v["submission"]["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let v = done("f-badpart");
    assert_eq!(state(&v), "failed");
    let e = error(&v);
    assert!(
        e.contains("sbatch refused the job") && e.to_lowercase().contains("partition"),
        "{e}"
    );
    let v = done("f-fail");
    let e = error(&v);
    assert_eq!(state(&v), "failed");
    assert!(
        e.contains("FAILED") && e.contains("3:0") && e.contains("no such model cyto9"),
        "{e}"
    );
    let v = done("f-empty");
    let e = error(&v);
    assert_eq!(state(&v), "failed");
    assert!(e.contains("wrote nothing"), "{e}");
    let v = done("f-timeout");
    let e = error(&v);
    assert_eq!(state(&v), "failed");
    assert!(e.contains("TIMEOUT"), "{e}");
    assert!(
        outcomes(&v).iter().any(|o| o == "follow:progress"),
        "a running job is recorded as progress: {:?}",
        outcomes(&v)
    );
}

#[test]
fn a_cancelled_submission_scancels_its_job() {
    let s = site("cancel", "", "");
    let d = start(&s, &["--lease-secs", "3"]);
    submit(&d, "c-1", "slow", &s.image, json!({}), json!({}));
    let v = wait_submission(&d, "c-1", 120, |v| {
        v["submission"]["data"]["submit"]["job_id"].is_u64()
    });
    let job_id = v["submission"]["data"]["submit"]["job_id"]
        .as_u64()
        .unwrap();
    let r = http_post(&d.base, "/api/v1/submissions/c-1/cancel", &json!({}));
    assert!(r["submission"].is_object(), "{r}");
    let v = wait_submission(&d, "c-1", 60, |v| state(v) == "cancelled");
    assert_eq!(state(&v), "cancelled");
    let started = std::time::Instant::now();
    loop {
        let st = s.lab.sacct_state(job_id);
        if st.starts_with("CANCELLED") {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 30,
            "job {job_id} is {st}, not cancelled"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

#[test]
fn init_and_check_setup_prepare_and_report_the_cluster() {
    let s = site("setup", "slurm_image_pull_via_sbatch = true", "");
    let run = |args: &[&str]| {
        let o = command(s.dir.path())
            .env(
                "BIOMERO_SLURM_CONFIG_FILE",
                s.dir.path().join("slurm-config.ini"),
            )
            .args(["--config", &s.settings.display().to_string()])
            .args(args)
            .output()
            .unwrap();
        text(&o)
    };
    let (code, out, err) = run(&["init", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let init: Value = serde_json::from_str(&out).unwrap();
    // the workflow without a job script got a generated one, valid bash
    let generated = s.abs.join("scripts/jobs/gen.sh");
    assert!(generated.exists(), "{init}");
    assert!(
        std::process::Command::new("bash")
            .arg("-n")
            .arg(&generated)
            .status()
            .unwrap()
            .success()
    );
    for f in ["data", "images/copy", "converters"] {
        assert!(s.abs.join(f).is_dir(), "init did not create {f}");
    }
    // one workflow has its container; the others are pending
    std::fs::write(s.abs.join("images/copy/w_copy_v1.0.0.sif"), b"sif").unwrap();
    std::fs::write(s.abs.join("images/copy/w_copy_v0.9.0.sif"), b"sif").unwrap();
    s.lab.chown(&s.abs.join("images"));
    let (code, out, err) = run(&["check-setup", "--json"]);
    assert_eq!(code, 1, "something is pending, so exit 1: {out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let copy = report["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["key"] == "copy")
        .unwrap();
    assert_eq!(copy["image_ready"], true, "{copy}");
    assert_eq!(copy["script_ready"], true, "{copy}");
    assert_eq!(copy["available"], json!(["v0.9.0", "v1.0.0"]));
    let pending: Vec<&str> = report["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        pending.contains(&"gen") && !pending.contains(&"copy"),
        "{pending:?}"
    );
    assert!(
        report["folders"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["exists"] == true && f["writable"] == true),
        "{report}"
    );
    // --pull starts a pull job per missing image; this cluster has no singularity, so the log says it failed
    let (code, out, err) = run(&["init", "--pull", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let init: Value = serde_json::from_str(&out).unwrap();
    assert!(
        init["pulls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p[0] == "gen"),
        "{init}"
    );
    let started = std::time::Instant::now();
    loop {
        let (_, out, _) = run(&["check-setup", "--json"]);
        let r: Value = serde_json::from_str(&out).unwrap();
        let log = r["pull_log"].to_string();
        if log.contains("FAILED to pull docker://test-lab/w_copy:1.0.0") {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 60,
            "no pull result in the log: {log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    // the same report over HTTP
    let d = start(&s, &[]);
    let v = http_get(&d.base, "/api/v1/check-setup");
    assert_eq!(v["setup"]["host"], "slurm", "{v}");
    assert!(
        v["setup"]["workflows"]
            .as_array()
            .is_some_and(|w| w.len() == 8),
        "{v}"
    );
    // the versions on the cluster, as BIOMERO's run script offers them: the configured one
    // first; a workflow without a container has none
    let w = http_get(&d.base, "/api/v1/workflows");
    let versions = |key: &str| {
        w["workflows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["key"] == key)
            .map(|x| x["versions"].clone())
            .unwrap()
    };
    assert_eq!(versions("copy"), json!(["v1.0.0", "v0.9.0"]), "{w}");
    assert_eq!(versions("fail"), json!([]), "{w}");
    // a run may choose another version the cluster has: its job runs that container
    let body = |id: &str, version: &str| {
        json!({
            "version": 1, "id": id, "workflow": "copy", "workflow_version": version,
            "inputs": {"paths": [s.image.display().to_string()]},
            "user": {"name": "alice", "group": "Lab A"},
        })
    };
    let r = http_post(&d.base, "/api/v1/submissions", &body("older", "0.9.0"));
    assert_eq!(r["created"], true, "{r}");
    let v = wait_submission(&d, "older", 120, |v| {
        matches!(state(v), "collected" | "failed" | "cancelled")
    });
    assert_eq!(state(&v), "collected", "{v}\n{}", d.log_text());
    let env = std::fs::read_to_string(
        s.dir
            .path()
            .join("state/staging/older/data/out/job-env.txt"),
    )
    .unwrap();
    for want in [
        "IMAGE_VERSION=v0.9.0",
        "SINGULARITY_IMAGE=w_copy_v0.9.0.sif",
    ] {
        assert!(env.lines().any(|l| l == want), "{want} not in:\n{env}");
    }
    // a version the cluster does not have is refused before anything is queued, naming those it has
    let r = http_post(&d.base, "/api/v1/submissions", &body("missing", "v0.8.0"));
    let fields = &r["error"]["fields"];
    assert_eq!(fields[0]["field"], "workflow_version", "{r}");
    let message = fields[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("v0.8.0") && message.contains("v1.0.0, v0.9.0"),
        "{r}"
    );
    assert!(http_get(&d.base, "/api/v1/submissions/missing")["submission"].is_null());
}

/// Submits the sample plate to `pcopy` with results to Screen `screen`; waits for its end.
fn run_plate_job(s: &Site, d: &Daemon, id: &str, screen: i64) -> Value {
    submit_plate(s, d, id, screen);
    wait_submission(d, id, 240, |v| {
        matches!(state(v), "imported" | "failed" | "cancelled")
    })
}

#[test]
fn an_unanswered_order_times_out_and_a_failed_import_fails_with_the_importers_reason() {
    let (url, sa) = importer_db();
    let s = site(
        "import-fail",
        "",
        &format!(
            "importer_database_url = \"{url}\"\nimport_poll_secs = 1\nimport_timeout_secs = 3\n"
        ),
    );
    let d = start(&s, &[]);
    // nobody polls the table: the order is placed, then the submission gives up with a hint
    let v = run_plate_job(&s, &d, "e2e-timeout", 7);
    assert_eq!(state(&v), "failed", "{v}");
    let e = v["submission"]["error"].as_str().unwrap_or_default();
    assert!(
        e.contains("has not finished order")
            && e.contains("Import Pending")
            && e.contains("is BIOMERO.importer running"),
        "{e}"
    );
    assert!(
        outcomes(&v).iter().any(|o| o == "import:progress"),
        "{:?}",
        outcomes(&v)
    );
    // the importer fails the order: its description is the submission's reason
    let importer = TestImporter::start(
        &sa,
        &[
            "--fail-destination",
            "9",
            "--reason",
            "Screen 9 belongs to another group",
        ],
    );
    let v = run_plate_job(&s, &d, "e2e-failed", 9);
    drop(importer);
    assert_eq!(state(&v), "failed", "{v}");
    let e = v["submission"]["error"].as_str().unwrap_or_default();
    assert!(
        e.contains("BIOMERO.importer failed order")
            && e.contains("Screen 9 belongs to another group"),
        "{e}"
    );
    // the results stay kept for a later retry
    assert!(
        s.dir
            .path()
            .join("data/lab-a/.analyzed/e2e-failed")
            .is_dir()
    );
}

#[test]
fn a_plate_job_comes_home_kept_and_imported_through_biomero_importer() {
    let (url, sa) = importer_db();
    let s = site(
        "import",
        "",
        &format!("importer_database_url = \"{url}\"\nimport_poll_secs = 1\n"),
    );
    let importer = TestImporter::start(&sa, &[]);
    let d = start(&s, &[]);
    let id = "e2e-plate";
    let v = run_plate_job(&s, &d, id, 7);
    drop(importer);
    assert_eq!(state(&v), "imported", "{v}\n{}", d.log_text());
    let ev = outcomes(&v);
    for want in ["collect:succeeded", "import:succeeded"] {
        assert!(ev.contains(&want.to_owned()), "{want} missing in {ev:?}");
    }
    // kept under the group folder, with a manifest; the plate's labels renamed for import
    let analyzed = s.dir.path().join(format!("data/lab-a/.analyzed/{id}"));
    let kept: Vec<_> = std::fs::read_dir(&analyzed).unwrap().flatten().collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let dir = kept[0].path();
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("biomero-stage-results.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["submission"], id);
    let plate = manifest["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "plate")
        .unwrap_or_else(|| panic!("no plate kept: {manifest}"));
    let labels = plate["labels"].as_array().unwrap();
    assert!(!labels.is_empty(), "{plate}");
    for l in labels {
        let l = l.as_str().unwrap();
        assert!(
            l.ends_with("/labels/cells.zarr") && dir.join(l).is_dir(),
            "{l}"
        );
    }
    // one label-only order (Import_Only_Labels), read back and validated by the importer's own code
    let data = &v["submission"]["data"]["import"];
    let orders = data["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 1, "{data}");
    assert_eq!(orders[0]["set"], "plate-labels");
    let uuid = orders[0]["uuid"].as_str().unwrap();
    let checked = run_reader(
        "importer.py",
        &["orders".as_ref(), sa.as_ref(), uuid.as_ref()],
    );
    let c = &checked[0];
    assert_eq!(c["valid"], true, "{c}");
    assert_eq!(
        c["stages"],
        json!(["Import Pending", "Import Started", "Import Completed"])
    );
    assert_eq!(c["order"]["DestinationType"], "Screen");
    assert_eq!(c["order"]["DestinationID"], 7);
    let files: Vec<String> = serde_json::from_value(c["order"]["Files"].clone()).unwrap();
    assert!(!files.is_empty());
    for f in &files {
        assert!(
            f.starts_with(&dir.display().to_string()) && f.ends_with("/labels/cells.zarr"),
            "{f}"
        );
        assert!(Path::new(f).is_dir(), "{f}");
    }
    // afterwards: the job's folder and log are gone from the cluster, the local staging too
    let job_id = v["submission"]["data"]["submit"]["job_id"]
        .as_u64()
        .unwrap();
    assert!(!s.abs.join(format!("data/biomero_{id}")).exists());
    assert!(!s.lab.home.join(format!("omero-{job_id}.log")).exists());
    assert!(!s.dir.path().join(format!("state/staging/{id}")).exists());
}

/// The states of a submission in pipeline order.
const ORDER: [&str; 8] = [
    "received",
    "planned",
    "staged",
    "uploaded",
    "submitted",
    "finished",
    "collected",
    "imported",
];

#[test]
fn a_daemon_killed_again_and_again_submits_once_keeps_once_and_orders_once() {
    let (url, sa) = importer_db();
    let s = site(
        "import-kill",
        "",
        &format!("importer_database_url = \"{url}\"\nimport_poll_secs = 1\n"),
    );
    // for this drill the job takes 2 s and the plate is larger (2 wells × 2 fields of
    // 1024²), so that follow and collect last long enough to be struck
    s.lab.script(
        &s.abs.join("scripts"),
        "copy.sh",
        "#!/bin/bash\nset -eo pipefail\nif [ -n \"${1:-}\" ]; then . \"$1\"; fi\necho 'copying 10%'\nsleep 2\ncp -r \"$DATA_PATH\"/data/in/. \"$DATA_PATH/data/out/\"\necho 'done 100%'\n",
    );
    let sample = s.dir.path().join("data/lab-a/sample");
    std::fs::remove_dir_all(&sample).unwrap();
    write_sample(s.dir.path(), &sample, 1024, 0, 2);
    let since = cluster_now(&s);
    // kill -9 22 times. A new plate job is submitted every fourth restart; the four kills of
    // its rounds wait until it is running the given step — plan/stage (just submitted),
    // upload (`staged`), submit (`uploaded`), follow (`submitted`) — then strike after a
    // random 0–40 ms; the older jobs are meanwhile in follow and import (the importer is not
    // running yet, so the import step keeps polling its placed order); the last two kills
    // strike at a random 50 ms–1.55 s. A 2 s lease lets a killed worker's claim expire soon
    // after the restart. The seed is printed to replay a run.
    let rank = |st: &str| ORDER.iter().position(|o| *o == st).unwrap_or(ORDER.len());
    let mut seed: u64 = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos(),
    ) | 1;
    eprintln!("kill drill seed: {seed}");
    let mut ids: Vec<String> = Vec::new();
    let mut seen = std::collections::BTreeMap::<String, u32>::new();
    let mut drill = Drill::new("kill -9 at 22 instants over every step of 5 plate jobs (per kill)");
    for i in 0..22 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let d = start(&s, &["--lease-secs", "2"]);
        if i % 4 == 0 && ids.len() < 5 {
            let id = format!("e2e-kill-{}", ids.len());
            submit_plate(&s, &d, &id, 7);
            ids.push(id);
        }
        if i < 20 {
            // wait (at most 20 s) until the newest job is at least at this round's state
            let target = ["received", "staged", "uploaded", "submitted"][i % 4];
            let newest = ids.last().unwrap();
            let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                let v = http_get(&d.base, &format!("/api/v1/submissions/{newest}"));
                if rank(state(&v)) >= rank(target) || std::time::Instant::now() > until {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            let jitter = if i % 4 == 0 { seed % 10 } else { seed % 40 };
            std::thread::sleep(std::time::Duration::from_millis(jitter));
        } else {
            std::thread::sleep(std::time::Duration::from_millis(50 + seed % 1500));
        }
        for id in &ids {
            let v = http_get(&d.base, &format!("/api/v1/submissions/{id}"));
            assert!(!matches!(state(&v), "failed" | "cancelled"), "{v}");
            *seen.entry(state(&v).to_owned()).or_default() += 1;
        }
        d.signal("KILL");
        drill.trial(true);
    }
    eprintln!("states of the jobs at the 22 kills: {seen:?}");
    let importer = TestImporter::start(&sa, &[]);
    let d = start(&s, &["--lease-secs", "2"]);
    // the same plate, undisturbed, for comparison
    submit_plate(&s, &d, "e2e-calm", 7);
    let calm = wait_submission(&d, "e2e-calm", 240, |v| {
        matches!(state(v), "imported" | "failed" | "cancelled")
    });
    assert_eq!(state(&calm), "imported", "{calm}");
    // the job's own environment record names its folder; everything else must match
    let kept_files = |id: &str| -> std::collections::BTreeMap<String, String> {
        let dir = s.dir.path().join(format!("data/lab-a/.analyzed/{id}"));
        let stamps: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(stamps.len(), 1, "{id}: one kept result, not {stamps:?}");
        let m: Value = serde_json::from_slice(
            &std::fs::read(stamps[0].path().join("biomero-stage-results.json")).unwrap(),
        )
        .unwrap();
        m["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["path"].as_str().unwrap().to_owned(),
                    f["sha256"].as_str().unwrap().to_owned(),
                )
            })
            .filter(|(p, _)| !p.ends_with("job-env.txt"))
            .collect()
    };
    let undisturbed = kept_files("e2e-calm");
    assert!(undisturbed.len() > 5, "{undisturbed:?}");
    for id in &ids {
        let v = wait_submission(&d, id, 240, |v| {
            matches!(state(v), "imported" | "failed" | "cancelled")
        });
        assert_eq!(state(&v), "imported", "{v}\nstates seen: {seen:?}");
        assert_each_step_once(id, &v);
        // outputs checksum-equal to the undisturbed run's
        assert_eq!(kept_files(id), undisturbed, "{id}");
        // one order, placed once, completed once
        let uuid = v["submission"]["data"]["import"]["orders"][0]["uuid"]
            .as_str()
            .unwrap()
            .to_owned();
        let checked = run_reader(
            "importer.py",
            &["orders".as_ref(), sa.as_ref(), uuid.as_ref()],
        );
        assert_eq!(
            checked[0]["stages"],
            json!(["Import Pending", "Import Started", "Import Completed"]),
            "{id}; states seen: {seen:?}"
        );
    }
    drop(importer);
    // one Slurm job per submission
    assert_one_job_each(&s, &since, &ids);
    // the kills landed in at least five different states (steps)
    assert!(seen.len() >= 5, "{seen:?}");
    assert_eq!(psql(&url, "SELECT count(DISTINCT uuid) FROM imports"), "6");
}

/// Steps counted in a daemon's `/metrics` (the duration histogram's counts).
fn steps_run(base: &str) -> f64 {
    let out = std::process::Command::new("curl")
        .args(["-sS", &format!("{base}/metrics")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("biomero_stage_step_duration_seconds_count"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn two_daemons_on_one_postgres_queue_run_fifty_plate_jobs_each_step_once() {
    const N: usize = 50;
    let (importer_url, sa) = importer_db();
    let queue = stage_tests::fresh_pg_database("bst_drill_queue");
    let s = site(
        "drill",
        "",
        &format!("importer_database_url = \"{importer_url}\"\nimport_poll_secs = 1\n"),
    );
    // both daemons on one PostgreSQL queue, each with its own admin port
    use_queue(&s, &queue);
    let text = std::fs::read_to_string(&s.settings).unwrap();
    let port2 = free_port();
    let settings2 = s.dir.path().join("biomero-stage-2.toml");
    std::fs::write(
        &settings2,
        text.replace(
            &format!("127.0.0.1:{}", s.port),
            &format!("127.0.0.1:{port2}"),
        ),
    )
    .unwrap();
    let since = cluster_now(&s);
    let _importer = TestImporter::start(&sa, &[]);
    let env = [(
        "BIOMERO_SLURM_CONFIG_FILE",
        s.dir.path().join("slurm-config.ini").display().to_string(),
    )];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let args = ["--poll-ms", "200", "--retry-ms", "300"];
    let a = Daemon::start(s.dir.path(), &s.settings, s.port, &args, &env);
    let b = Daemon::start(s.dir.path(), &settings2, port2, &args, &env);
    let ids: Vec<String> = (0..N).map(|i| format!("drill-{i:02}")).collect();
    for (i, id) in ids.iter().enumerate() {
        submit_plate(&s, if i % 2 == 0 { &a } else { &b }, id, 7);
    }
    let mut drill = Drill::new("two daemons, one PostgreSQL queue, 50 plate jobs (per job)");
    for id in &ids {
        let v = wait_submission(&a, id, 600, |v| {
            matches!(state(v), "imported" | "failed" | "cancelled")
        });
        assert_eq!(state(&v), "imported", "{id}: {v}");
        assert_each_step_once(id, &v);
        drill.trial(true);
    }
    // both daemons worked
    let (sa_steps, sb_steps) = (steps_run(&a.base), steps_run(&b.base));
    assert!(sa_steps > 0.0 && sb_steps > 0.0, "{sa_steps} / {sb_steps}");
    // one Slurm job per submission
    assert_one_job_each(&s, &since, &ids);
    // one importer order per submission, placed once
    let q = |sql: &str| psql(&importer_url, sql);
    assert_eq!(q("SELECT count(DISTINCT uuid) FROM imports"), N.to_string());
    assert_eq!(
        q("SELECT count(*) FROM imports WHERE stage = 'Import Pending'"),
        N.to_string()
    );
    assert_eq!(
        q("SELECT count(*) FROM imports WHERE stage = 'Import Completed'"),
        N.to_string()
    );
    eprintln!("{N} submissions on two daemons: {sa_steps} + {sb_steps} steps");
}

#[test]
fn a_plate_job_whose_ssh_connection_is_cut_in_upload_and_in_download_resumes_and_verifies() {
    let (url, sa) = importer_db();
    // the upload step's own transfer (not the one made while staging, drilled below)
    let s = site(
        "ssh-cut",
        "",
        &format!(
            "importer_database_url = \"{url}\"\nimport_poll_secs = 1\nupload_while_staging = false\n"
        ),
    );
    // a plate big enough (129 MB in 808 files) that its transfers can be cut
    let big = s.dir.path().join("data/lab-a/big");
    write_sample(s.dir.path(), &big, 4096, 0, 2);
    let _importer = TestImporter::start(&sa, &[]);
    let d = start(&s, &[]);
    let id = "ssh-cut";
    let r = http_post(
        &d.base,
        "/api/v1/submissions",
        &json!({
            "version": 1, "id": id, "workflow": "pcopy",
            "inputs": {"paths": [big.join("plate.ome.zarr").display().to_string()]},
            "user": {"name": "alice", "group": "Lab A"},
            "results": {"type": "Screen", "id": 7},
        }),
    );
    assert_eq!(r["created"], true, "{r}");
    // cut the daemon's SSH master twice while the upload runs (state `staged`) and twice
    // while the download runs (state `finished`)
    let control = s.dir.path().join("state/ssh");
    let (mut up, mut down) = (0, 0);
    let started = std::time::Instant::now();
    let v = loop {
        let v = http_get(&d.base, &format!("/api/v1/submissions/{id}"));
        let st = state(&v).to_owned();
        if matches!(st.as_str(), "imported" | "failed" | "cancelled") {
            break v;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_mins(5),
            "{v}\n{}",
            d.log_text()
        );
        let cut = match st.as_str() {
            "staged" if up < 2 => Some(&mut up),
            "finished" if down < 2 => Some(&mut down),
            _ => None,
        };
        match cut {
            Some(n) => {
                std::thread::sleep(std::time::Duration::from_millis(300));
                if kill_ssh_master(&control) {
                    *n += 1;
                }
            }
            None => std::thread::sleep(std::time::Duration::from_millis(30)),
        }
    };
    assert_eq!(state(&v), "imported", "{v}\n{}", d.log_text());
    assert_each_step_once(id, &v);
    // the cuts hit running transfers: each transfer step was retried, then verified
    let ev = outcomes(&v);
    let retried = |step: &str| {
        ev.iter()
            .filter(|e| *e == &format!("{step}:retrying"))
            .count()
    };
    let mut drill = Drill::new("SSH master killed in a plate job's upload and download (per cut)");
    drill.trial(retried("upload") >= 1);
    drill.trial(retried("collect") >= 1);
    assert!(
        retried("upload") >= 1 && retried("collect") >= 1,
        "cuts: {up} in upload, {down} in download; events: {ev:?}"
    );
    let transfer = &v["submission"]["data"]["upload"]["transfer"];
    assert!(transfer["files"].as_u64().unwrap() > 800, "{transfer}");
    // what came back is what went: the copy job returns its inputs, file for file
    let kept = &v["submission"]["data"]["collect"]["kept"];
    let kept = std::path::PathBuf::from(kept.as_str().unwrap());
    let m: Value =
        serde_json::from_slice(&std::fs::read(kept.join("biomero-stage-results.json")).unwrap())
            .unwrap();
    let files = m["files"].as_array().unwrap();
    assert!(files.len() > 800, "{}", files.len());
    eprintln!(
        "cuts: {up} in upload, {down} in download; the last upload: {transfer}; events: {ev:?}"
    );
}

#[test]
fn inputs_are_uploaded_while_staged_and_a_cut_stream_is_resumed_by_the_upload_step() {
    let s = site(
        "streamed",
        "",
        "prep_only = true\nupload_while_staging = true\n",
    );
    let big = s.dir.path().join("data/lab-a/big");
    write_sample(s.dir.path(), &big, 4096, 0, 2);
    let d = start(&s, &[]);
    let plate = big.join("plate.ome.zarr").display().to_string();
    let post = |id: &str| {
        let r = http_post(
            &d.base,
            "/api/v1/submissions",
            &json!({
                "version": 1, "id": id, "workflow": "pcopy",
                "inputs": {"paths": [plate]},
                "user": {"name": "alice", "group": "Lab A"},
            }),
        );
        assert_eq!(r["created"], true, "{r}");
    };
    let same_as_staged = |v: &Value| {
        let staged = v["submission"]["data"]["stage"]["inputs"].as_str().unwrap();
        let remote = v["submission"]["data"]["upload"]["inputs"]
            .as_str()
            .unwrap();
        let here = stage_cluster::transfer::listing::local(Path::new(staged)).unwrap();
        // the Slurm user's home holds the site's folder: the remote path is relative to it
        let home = s.abs.parent().unwrap();
        let there = stage_cluster::transfer::listing::local(&home.join(remote)).unwrap();
        assert_eq!(here.files, there.files, "{staged} and {remote} differ");
        assert!(here.files.len() > 800, "{}", here.files.len());
    };
    // uncut: the inputs went during the stage step, and the upload step only confirmed them
    let steps_once = |id: &str, v: &Value| {
        let ev = outcomes(v);
        for step in ["plan", "stage", "upload"] {
            let n = ev
                .iter()
                .filter(|e| **e == format!("{step}:succeeded"))
                .count();
            assert_eq!(n, 1, "{id}: {step} succeeded {n} times: {ev:?}");
        }
    };
    post("streamed-1");
    let v = wait_submission(&d, "streamed-1", 300, |v| {
        matches!(state(v), "uploaded" | "failed" | "cancelled")
    });
    assert_eq!(state(&v), "uploaded", "{v}");
    steps_once("streamed-1", &v);
    let data = &v["submission"]["data"];
    assert_eq!(
        data["upload"]["transfer"]["method"], "tar-over-ssh, while staging",
        "{data}"
    );
    assert!(data["stage"]["streamed"]["listing_sum"].is_u64(), "{data}");
    same_as_staged(&v);
    // the SSH master cut while the stream runs (state `planned`): the stage step still ends
    // once, and the upload step resumes and verifies what the stream had not finished
    post("streamed-2");
    let control = s.dir.path().join("state/ssh");
    let started = std::time::Instant::now();
    let mut cuts = 0;
    let v = loop {
        let v = http_get(&d.base, "/api/v1/submissions/streamed-2");
        let st = state(&v).to_owned();
        if matches!(st.as_str(), "uploaded" | "failed" | "cancelled") {
            break v;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_mins(5),
            "{v}\n{}",
            d.log_text()
        );
        if st == "planned" && cuts == 0 && v["submission"]["data"]["plan"].is_object() {
            std::thread::sleep(std::time::Duration::from_millis(300));
            if kill_ssh_master(&control) {
                cuts += 1;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(30));
    };
    assert_eq!(state(&v), "uploaded", "{v}\n{}", d.log_text());
    steps_once("streamed-2", &v);
    let data = &v["submission"]["data"];
    let mut drill = Drill::new("SSH master killed while inputs are uploaded during staging");
    let resumed = data["upload"]["transfer"]["method"] == "tar-over-ssh"
        && data["stage"]["streamed"].is_null();
    drill.trial(cuts == 1 && resumed);
    assert!(
        cuts == 1 && resumed,
        "cuts {cuts}: {data}\n{}",
        d.log_text()
    );
    same_as_staged(&v);
}
