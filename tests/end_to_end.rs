//! The full pipeline on real parts, one submission per input mode: the
//! machine's PostgreSQL as the queue and as BIOMERO.importer's database, the
//! local single-node Slurm + sshd, inputs from the shared storage and from the
//! OMERO test server, and the demo's threshold segmentation as the workflow,
//! run by Slurm as the Slurm user.
//!
//! submit → plan → stage → upload over SSH → sbatch → the job segments its
//! inputs → follow → collect → check and keep → importer orders, accepted by
//! BIOMERO.importer's own order model and completed by the test importer loop.
//! Asserted: the files on the cluster, the job's environment, the returned
//! labels (counted by tifffile / zarr-python), the rows in `imports`, the event
//! history and the metrics.

// metrics are counts: exact float comparison is what is meant
#![allow(clippy::unwrap_used, clippy::float_cmp)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};
use stage_tests::cluster::lab;
use stage_tests::drills::Drill;
use stage_tests::omero::{PASSWORD, TestOmero, USER, ids, standard_world};
use stage_tests::site::{assert_each_step_once, outcomes, state};
use stage_tests::{
    Daemon, TestImporter, bin_path, free_port, fresh_pg_database, http_post, importer_db, psql,
    repo_root, run_reader, wait_submission,
};

/// The workflow's job script: records what the job saw, then segments with the
/// biomero-stage binary of this checkout (the Slurm user can run it).
fn job_script() -> String {
    format!(
        r#"#!/bin/bash
#SBATCH --time=00:05:00
set -eo pipefail
if [ -n "${{1:-}}" ]; then . "$1"; fi
env | grep -E '^(DATA_PATH|IMAGE_PATH|IMAGE_VERSION|SINGULARITY_IMAGE|SCRIPT_PATH|MIN_SIZE|SLURM_JOB_ID)=' | sort > "$DATA_PATH/data/out/job-env.txt"
(cd "$DATA_PATH/data/in" && find . -maxdepth 1 -mindepth 1 | sort) > "$DATA_PATH/data/out/inputs.txt"
printf 'image,objects\nall,%s\n' "${{MIN_SIZE:-20}}" > "$DATA_PATH/data/out/counts.csv"
echo "segmenting 10%"
exec {bin} demo-threshold --input "$DATA_PATH/data/in" --output "$DATA_PATH/data/out" --min-size "${{MIN_SIZE:-20}}"
"#,
        bin = bin_path().display()
    )
}

/// The drop-in script's attended mode (omero-scripts' `attended.follow`), on the daemon's
/// own API, following run `run` every second; its session's keep-alive is counted. When the
/// run has ended it prints what the script then works from (JSON).
fn attended_follower(base: &str, token: &std::path::Path, run: &str) -> std::process::Child {
    let script = r#"
import json, os, sys
from biomero_stage_omero import attended
from biomero_stage_omero.daemon import Daemon, DaemonError, Settings
d = Daemon(Settings.load("/nonexistent.ini"))
alive, lines = [], []
details = attended.follow(d, sys.argv[1], lambda: alive.append(1) or True, lines.append, poll_seconds=1)
out = {"keep_alive": len(alive), "lines": lines, "submissions": {}}
for sid, det in details.items():
    res = d.results(sid)
    # OMERO lists one image per imported file, named by the file (as BIOMERO.importer names them)
    found = [(1000 + i, n) for i, n in enumerate(n for o in res["orders"] for n in o["file_names"])]
    cands, unmatched = attended.roi_candidates(found, res)
    pairs, ambiguous = attended.select_roi_image_pairs(cands, "")
    refused = []
    for bad in ("../../etc/passwd", "biomero-stage-results.json.missing", res["tables"][0] + "/"):
        try:
            d.result_file(sid, bad)
        except DaemonError as e:
            refused.append(e.status)
    out["submissions"][sid] = {
        "results": res, "csv": {t: d.result_file(sid, t).decode() for t in res["tables"]},
        "candidates": cands, "unmatched": unmatched, "pairs": pairs,
        "rois": attended.labels2rois_inputs(pairs, {"6c) ROI shape": "Polygon"}, res["workflow"], attended.run_uuid(res)),
        "refused": refused}
    # the script's report of what it made goes into the submission's history
    d.report_made(sid, ["4) counts.csv: table counts_x.csv on Dataset 1"], ["6a) Labels2Rois.py is not installed in OMERO; no ROIs were made"])
    for bad_id, body in (("no-such-submission", {"made": []}), (sid, {"made": "one"})):
        try:
            d._call("POST", f"/api/v1/submissions/{bad_id}/results/made", body)
        except DaemonError as e:
            out["submissions"][sid]["refused"].append(e.status)
print(json.dumps(out))
"#;
    std::process::Command::new(stage_tests::python())
        .args(["-c", script, run])
        .env("PYTHONPATH", repo_root().join("omero-scripts"))
        .env("BIOMERO_STAGE_URL", base)
        .env("BIOMERO_STAGE_TOKEN_FILE", token)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// The attended script saw the run through to its end, kept the session alive meanwhile, and
/// has what it needs for the tables and the ROIs; the daemon attached no CSV in their place.
fn assert_attended_run_ended(
    follower: std::process::Child,
    d: &Daemon,
    id: &str,
    omero: &TestOmero,
) {
    let out = follower.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log_text()
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["keep_alive"].as_u64().unwrap() >= 2, "{v}");
    let lines: Vec<&str> = v["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(lines.len() >= 2, "each change is a line: {lines:?}");
    assert_eq!(
        lines.last().unwrap(),
        &format!("{id} threshold: imported"),
        "{lines:?}"
    );
    let sub = &v["submissions"][id];
    assert_eq!(sub["results"]["tables"], json!(["counts.csv"]), "{sub}");
    assert_eq!(sub["csv"]["counts.csv"], "image,objects\nall,15\n", "{sub}");
    assert!(
        sub["results"]["job_id"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .is_ok(),
        "{sub}"
    );
    // every imported result image pairs with the OMERO image it was made from
    let inputs = [ids::IMG_EXTERNAL, ids::IMG_ANNOTATED, ids::IMG_TILES];
    let cands = sub["candidates"].as_array().unwrap();
    assert!(!cands.is_empty() && sub["unmatched"] == json!([]), "{sub}");
    for c in cands {
        assert!(inputs.contains(&c[1].as_i64().unwrap()), "{c}");
        assert!(c[2].as_str().unwrap().contains("_renamed."), "{c}");
    }
    assert_eq!(
        sub["pairs"].as_array().unwrap().len(),
        cands.len(),
        "one result per input: {sub}"
    );
    assert_eq!(sub["rois"]["Mapping_Mode"], "Explicit Image IDs", "{sub}");
    assert_eq!(
        sub["refused"],
        json!([404, 404, 404, 404, 400]),
        "only listed, confined files; reports on kept results only: {sub}"
    );
    let history = stage_tests::http_get(&d.base, &format!("/api/v1/submissions/{id}"));
    let note = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["step"] == "attended")
        .unwrap_or_else(|| panic!("no attended note: {history}"));
    assert_eq!(note["outcome"], "noted", "{note}");
    assert_eq!(
        note["detail"]["made"],
        json!(["4) counts.csv: table counts_x.csv on Dataset 1"]),
        "{note}"
    );
    assert!(
        omero.attached().iter().all(|a| a.name != "counts.csv"),
        "attended: the script makes the table, the daemon attaches no CSV"
    );
}

/// A metric's value (summed over the lines that start with `prefix`).
fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
#[allow(clippy::too_many_lines)]
fn each_input_mode_runs_from_submission_to_import_on_slurm_postgresql_and_the_importer() {
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (world, data) = standard_world(&dir.path().join("data"), 96);
    let omero = TestOmero::start(world);
    // the cluster: the job script and BIOMERO's folders in the Slurm user's home
    let (rel, abs) = lab.folder("e2e");
    lab.script(&abs.join("scripts"), "threshold.sh", &job_script());
    // the workflows: one per input mode, with the demo's descriptors
    let descriptors = dir.path().join("descriptors/github.com/biomero-stage");
    for (repo, file) in [
        ("W_Threshold", "descriptor.json"),
        ("W_ThresholdZarr", "descriptor-zarr.json"),
    ] {
        let d = descriptors.join(repo).join("v1.0.0");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(
            repo_root().join("config/demo").join(file),
            d.join("descriptor.json"),
        )
        .unwrap();
    }
    let wf = |k: &str, repo: &str| {
        format!(
            "{k} = {k}\n{k}_repo = https://github.com/biomero-stage/{repo}/tree/v1.0.0\n{k}_job = threshold.sh\n"
        )
    };
    let ini = dir.path().join("slurm-config.ini");
    std::fs::write(
        &ini,
        format!(
            "[SSH]\nhost = slurm\n[SLURM]\nslurm_data_path = {rel}/data\nslurm_images_path = {rel}/images\nslurm_converters_path = {rel}/converters\nslurm_script_path = {rel}/scripts\n[WORKFLOWS]\n{}{}{}[UI]\nzarr_workflows = [\"threshold_zarr\"]\nplate_workflows = [\"threshold_plate\"]\n",
            wf("threshold", "W_Threshold"),
            wf("threshold_zarr", "W_ThresholdZarr"),
            wf("threshold_plate", "W_ThresholdZarr"),
        ),
    )
    .unwrap();
    let mappings = dir.path().join("biomero-config.json");
    std::fs::write(
        &mappings,
        r#"{"group_mappings": {"5": {"folder": "lab-a", "groupName": "Lab A"}}}"#,
    )
    .unwrap();
    let (importer_url, sa) = importer_db();
    let queue = fresh_pg_database("bst_e2e_queue");
    let port = free_port();
    let token = dir.path().join("admin-token");
    std::fs::write(&token, "test-token\n").unwrap();
    let settings = dir.path().join("biomero-stage.toml");
    std::fs::write(
        &settings,
        format!(
            "state_dir = \"{state}\"\nqueue_url = \"{queue}\"\nadmin_listen = \"127.0.0.1:{port}\"\nadmin_token_file = \"{token}\"\nworkers = 2\nslurm_config = \"{ini}\"\ndescriptor_dirs = [\"{desc}\"]\ndescriptor_fetch = false\ndata_roots = [\"{root}\"]\ngroup_mappings_file = \"{mappings}\"\nomero_url = \"{url}\"\nomero_user = \"{USER}\"\npixel_buffer_url = \"{url}\"\nomero_tile_size = 64\nssh_config_file = \"{ssh}\"\nfollow_poll_secs = 1\nimporter_enabled = true\nimporter_database_url = \"{importer_url}\"\nimport_poll_secs = 1\n",
            state = dir.path().join("state").display(),
            token = token.display(),
            ini = ini.display(),
            desc = dir.path().join("descriptors").display(),
            root = data.root.display(),
            mappings = mappings.display(),
            url = omero.url,
            ssh = lab.ssh_config.display(),
        ),
    )
    .unwrap();
    let _importer = TestImporter::start(&sa, &[]);
    let d = Daemon::start(
        dir.path(),
        &settings,
        port,
        &["--poll-ms", "200", "--retry-ms", "300"],
        &[
            ("BIOMERO_STAGE_OMERO_PASSWORD", PASSWORD),
            ("BIOMERO_SLURM_CONFIG_FILE", &ini.display().to_string()),
        ],
    );
    let images: Vec<String> = ["image_00", "image_01"]
        .iter()
        .map(|i| {
            data.samples_a
                .join(format!("images/{i}.ome.zarr"))
                .display()
                .to_string()
        })
        .collect();
    // (mode, submission, what the cluster's data/in holds, the destination ordered to)
    let runs = [
        (
            "tiff",
            json!({
                "version": 1, "id": "e2e-tiff", "workflow": "threshold",
                "inputs": {"omero": [{"type": "Dataset", "id": ids::DATASET}]},
                "parameters": {"min_size": 15},
            }),
            3,
            ("Dataset", ids::DATASET),
        ),
        (
            "zarr",
            json!({
                "version": 1, "id": "e2e-zarr", "workflow": "threshold_zarr",
                "inputs": {"paths": images},
                "results": {"type": "Dataset", "id": ids::DATASET},
            }),
            2,
            ("Dataset", ids::DATASET),
        ),
        (
            "zarr-plate",
            json!({
                "version": 1, "id": "e2e-plate", "workflow": "threshold_plate",
                "inputs": {"omero": [{"type": "Plate", "id": ids::PLATE_TILES}]},
                "results": {"type": "Screen", "id": ids::SCREEN},
            }),
            1,
            ("Screen", ids::SCREEN),
        ),
    ];
    for (_, doc, _, _) in &runs {
        let mut doc = doc.clone();
        doc["user"] = json!({"name": "alice", "group": "Lab A"});
        doc["options"] = json!({"keep_remote_data": true});
        let r = http_post(&d.base, "/api/v1/submissions", &doc);
        assert_eq!(r["created"], true, "{r}");
    }
    let mut drill = Drill::new("end to end on Slurm + PostgreSQL + importer (per input mode)");
    for (mode, doc, inputs, (dest_type, dest_id)) in &runs {
        let id = doc["id"].as_str().unwrap();
        let v = wait_submission(&d, id, 300, |v| {
            matches!(state(v), "imported" | "failed" | "cancelled")
        });
        assert_eq!(state(&v), "imported", "{mode}: {v}\n{}", d.log_text());
        // the history: every step once, in order
        assert_each_step_once(id, &v);
        let ev = outcomes(&v);
        let order: Vec<&str> = ev
            .iter()
            .filter(|e| e.ends_with(":succeeded") || e.ends_with(":accepted"))
            .map(|e| e.split(':').next().unwrap())
            .collect();
        assert_eq!(
            order,
            [
                "intake", "plan", "stage", "upload", "submit", "follow", "collect", "import"
            ],
            "{mode}: {ev:?}"
        );
        // the files on the cluster (kept: keep_remote_data)
        let job = abs.join(format!("data/biomero_{id}"));
        let on_cluster: Vec<String> = std::fs::read_dir(job.join("data/in"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(on_cluster.len(), *inputs, "{mode}: {on_cluster:?}");
        let suffix = if *mode == "tiff" { ".tif" } else { ".zarr" };
        assert!(
            on_cluster.iter().all(|n| n.ends_with(suffix)),
            "{mode}: {on_cluster:?}"
        );
        // the job's environment, as BIOMERO sets it, and what it found in data/in
        let data_in = &v["submission"]["data"];
        let kept = PathBuf::from(data_in["collect"]["kept"].as_str().unwrap());
        let mut seen_by_job: Vec<String> = std::fs::read_to_string(kept.join("inputs.txt"))
            .unwrap()
            .lines()
            .map(|l| l.trim_start_matches("./").to_owned())
            .collect();
        let mut on_cluster = on_cluster.clone();
        seen_by_job.sort();
        on_cluster.sort();
        assert_eq!(seen_by_job, on_cluster, "{mode}");
        let env = std::fs::read_to_string(kept.join("job-env.txt")).unwrap();
        let job_id = data_in["submit"]["job_id"].as_u64().unwrap();
        for want in [
            format!("DATA_PATH={rel}/data/biomero_{id}"),
            format!("SCRIPT_PATH={rel}/scripts"),
            format!("SLURM_JOB_ID={job_id}"),
            format!("MIN_SIZE={}", if *mode == "tiff" { 15 } else { 20 }),
        ] {
            assert!(
                env.lines().any(|l| l == want),
                "{mode}: {want} not in\n{env}"
            );
        }
        // the returned labels, counted by independent readers, match the workflow's report
        let report: Value =
            serde_json::from_slice(&std::fs::read(kept.join("threshold-report.json")).unwrap())
                .unwrap();
        let segmented = report["images"].as_array().unwrap();
        let expect_images = if *mode == "zarr-plate" { 8 } else { *inputs };
        assert_eq!(segmented.len(), expect_images, "{mode}: {report}");
        let mut counted: BTreeMap<String, u64> = BTreeMap::new();
        for img in segmented {
            let rel_out = img["output"].as_str().unwrap();
            let (store, field) = rel_out.split_once('/').unwrap_or((rel_out, ""));
            let p = kept.join(store);
            let n = if *mode == "tiff" {
                run_reader("count_labels.py", &[p.as_os_str()])[p.display().to_string()][""]
                    .as_u64()
            } else {
                run_reader("count_labels.py", &[p.as_os_str()])[field]["threshold.zarr"].as_u64()
            };
            assert_eq!(n, img["objects"].as_u64(), "{mode} {rel_out}");
            assert!(n.unwrap() > 0, "{mode} {rel_out}: nothing segmented");
            counted.insert(rel_out.to_owned(), n.unwrap());
        }
        // the importer orders: accepted by BIOMERO.importer's model, completed, to the destination
        let orders = v["submission"]["data"]["import"]["orders"]
            .as_array()
            .unwrap();
        assert!(!orders.is_empty(), "{mode}: no order");
        for o in orders {
            let uuid = o["uuid"].as_str().unwrap();
            let checked = run_reader(
                "importer.py",
                &["orders".as_ref(), sa.as_ref(), uuid.as_ref()],
            );
            assert_eq!(checked[0]["valid"], true, "{mode}: {checked}");
            assert_eq!(
                checked[0]["stages"],
                json!(["Import Pending", "Import Started", "Import Completed"]),
                "{mode}: {checked}"
            );
            assert_eq!(
                checked[0]["order"]["DestinationType"], *dest_type,
                "{mode}: {checked}"
            );
            assert_eq!(
                checked[0]["order"]["DestinationID"], *dest_id,
                "{mode}: {checked}"
            );
            let rows = psql(
                &importer_url,
                &format!(
                    "SELECT count(*) FROM imports WHERE uuid = '{uuid}' AND group_name = 'Lab A' AND user_name = 'alice'"
                ),
            );
            assert_eq!(rows, "3", "{mode}: {uuid}");
        }
        eprintln!("{mode}: {counted:?}, {} order(s)", orders.len());
        drill.trial(true);
    }
    // a BIOMERO run as OMERO.biomero 1.6.1 starts it: the Dataset's images (Data_Type Image),
    // into a new Dataset by name, the results renamed, the cluster cleaned up afterwards; the
    // drop-in script in attended mode asks for tables and ROIs, which it makes itself
    let alice = omero.open_user_session((60, "alice"), (5, "Lab A"), &[5]);
    let inputs = json!({
        "threshold": true, "threshold_Version": "v1.0.0", "threshold_|_min_size": 15,
        "threshold_zarr": false, "threshold_plate": false,
        "Data_Type": "Image", "IDs": [ids::IMG_EXTERNAL, ids::IMG_ANNOTATED, ids::IMG_TILES],
        "E-mail": false, "Use_ZARR_Format": false, "OME-Zarr_version": "0.4",
        "Select how to import your results (one or more)": true,
        "1) Zip attachment to parent": false, "2) Attach to original images": false,
        "3a) Import into NEW Dataset": "threshold results",
        "3a) Import into NEW Screen": "--NO THANK YOU--",
        "3b) Allow duplicate dataset (name)?": false,
        "3c) Rename the imported images": "{original_file}_renamed.{ext}",
        "4) Upload result CSVs as OMERO tables": true,
        "5) Attach individual non-image output files": false,
        "6a) Create ROIs from label images": true, "6c) ROI shape": "Polygon", "Cleanup?": true,
    });
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "-H",
            "Authorization: Bearer test-token",
            "-H",
            "Content-Type: application/json",
            "-H",
            &format!("X-OMERO-Session-Key: {alice}"),
            "--data-binary",
            &json!({"version": 1, "script": "SLURM_Run_Workflow.py", "inputs": inputs, "attended": true}).to_string(),
            &format!("{}/api/v1/biomero/runs", d.base),
        ])
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let created = omero.created();
    assert_eq!(created.len(), 1, "{r}");
    let id = r["run"]["submissions"][0][0].as_str().unwrap().to_owned();
    let notices = r["run"]["notices"].to_string();
    assert!(
        notices.contains(
            "`4) Upload result CSVs as OMERO tables`: made in your session by the OMERO script"
        ) && notices.contains("`6a) Create ROIs from label images`: made in your session"),
        "{r}"
    );
    // the attended script follows the run from the moment it is queued
    let follower = attended_follower(&d.base, &token, r["run"]["run"].as_str().unwrap());
    let v = wait_submission(&d, &id, 300, |v| {
        matches!(state(v), "imported" | "failed" | "cancelled")
    });
    assert_eq!(state(&v), "imported", "biomero run: {v}\n{}", d.log_text());
    assert_each_step_once(&id, &v);
    let orders = v["submission"]["data"]["import"]["orders"]
        .as_array()
        .unwrap();
    assert!(!orders.is_empty(), "{v}");
    for o in orders {
        let uuid = o["uuid"].as_str().unwrap();
        let checked = run_reader(
            "importer.py",
            &["orders".as_ref(), sa.as_ref(), uuid.as_ref()],
        );
        assert_eq!(checked[0]["valid"], true, "{checked}");
        assert_eq!(
            checked[0]["order"]["DestinationType"], "Dataset",
            "{checked}"
        );
        assert_eq!(
            checked[0]["order"]["DestinationID"], created[0].1,
            "the new Dataset: {checked}"
        );
        // the row's names (the order model's summary shortens long lists with "...")
        let names = checked[0]["row"]["file_names"].as_array().unwrap();
        assert!(!names.is_empty(), "{checked}");
        for n in names {
            assert!(
                n.as_str().unwrap().contains("_renamed."),
                "renamed by the pattern: {checked}"
            );
        }
    }
    assert!(
        !abs.join(format!("data/biomero_{id}")).exists(),
        "Cleanup? removed the job folder on the cluster"
    );
    assert_attended_run_ended(follower, &d, &id, &omero);
    // the metrics: every step ran three times, bytes went both ways, nothing failed
    let m = std::process::Command::new("curl")
        .args(["-sS", &format!("{}/metrics", d.base)])
        .output()
        .unwrap();
    let m = String::from_utf8_lossy(&m.stdout).into_owned();
    for step in [
        "plan", "stage", "upload", "submit", "follow", "collect", "import",
    ] {
        let n = metric(
            &m,
            &format!(
                "biomero_stage_step_duration_seconds_count{{step=\"{step}\",outcome=\"done\"}}"
            ),
        );
        assert!(n >= 3.0, "{step}: {n}\n{m}");
    }
    assert!(
        metric(
            &m,
            "biomero_stage_transferred_bytes_total{direction=\"uploaded\"}"
        ) > 0.0,
        "{m}"
    );
    assert!(
        metric(
            &m,
            "biomero_stage_transferred_bytes_total{direction=\"downloaded\"}"
        ) > 0.0,
        "{m}"
    );
    assert_eq!(metric(&m, "biomero_stage_failures_total"), 0.0, "{m}");
    assert_eq!(
        metric(&m, "biomero_stage_submissions{state=\"imported\"}"),
        4.0,
        "{m}"
    );
    // the job folders were kept on request (keep_remote_data); the test removes them
    let _ = std::fs::remove_dir_all(&abs);
}
