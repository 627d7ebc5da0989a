//! Every submission is a BIOMERO WorkflowRun in BIOMERO's own event store, and
//! BIOMERO's own code (biomero 2.8.3, `tests/biomero/oracle.py`) is the judge:
//! its WorkflowTracker reads our runs and tasks, eventsourcing decodes and
//! re-encodes every event to the same bytes, its followers catching up change
//! no view row, and its rebuild (`reset_tables`, as `Slurm Init` does)
//! reproduces every row we wrote as the steps happened.

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use stage_tests::biomero_store::{
    assert_reencodes, assert_versions_contiguous, biomero_store, caught_up, ours, start_tracked,
    task_names, track_in, view_row, workflow_id,
};
use stage_tests::omero::{PASSWORD, ids, omero_site};
use stage_tests::site::{Site, site, start, state, submit_as, submit_plate};
use stage_tests::{
    Daemon, TestImporter, biomero_oracle, http_get, http_post, importer_db, psql, wait_submission,
};

#[test]
fn a_biomero_run_shows_its_omero_user_and_its_stage_as_it_happens() {
    let (url, sa) = biomero_store();
    let s = omero_site(64, "");
    let d = start_tracked(&s, &sa);
    let key = s.omero.open_user_session((60, "alice"), (5, "Lab A"), &[5]);
    let inputs = json!({
        "cellpose": true, "cellpose_Version": "v1.4.0", "IDs": [ids::IMG_EXTERNAL], "Data_Type": "Image",
        "E-mail": false, "Use_ZARR_Format": false, "Select how to import your results (one or more)": true,
        "3a) Import into NEW Dataset": "--NO THANK YOU--", "Dataset_ID": ids::DATASET,
    });
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "-H",
            "Authorization: Bearer test-token",
            "-H",
            &format!("X-OMERO-Session-Key: {key}"),
            "--data-binary",
            &json!({"version": 1, "run": "bmrun", "script": "SLURM_Run_Workflow.py", "inputs": inputs})
                .to_string(),
            &format!("{}/api/v1/biomero/runs", d.base),
        ])
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["run"]["submissions"][0][0], "bmrun-1", "{r}");
    // no cluster here: the run is staged and waits at the upload, and the dashboard says so now
    let v = wait_submission(&d, "bmrun-1", 120, |v| state(v) == "staged");
    assert_eq!(state(&v), "staged");
    caught_up(&d, 60);
    let wf = workflow_id(&d, "bmrun-1");
    let views = biomero_oracle(&sa, &["views"]);
    let progress = view_row(
        &views,
        "biomero_workflow_progress_view",
        "workflow_id",
        &json!(wf),
    );
    assert_eq!(progress["status"], "TRANSFERRING", "{progress}");
    assert_eq!(progress["progress"], "5%", "{progress}");
    // the ids come from alice's OMERO session, not from the request
    assert_eq!(
        (progress["user"].as_i64(), progress["group"].as_i64()),
        (Some(60), Some(5))
    );
    assert_eq!(progress["name"], "Slurm Workflow");
    assert_eq!(progress["task"], "_SLURM_Image_Transfer.py");
    // BIOMERO's tracker reads the run and its tasks as its own
    let runs = biomero_oracle(&sa, &["read", &wf]);
    let run = &runs[0];
    assert_eq!(
        (run["user"].as_i64(), run["group"].as_i64()),
        (Some(60), Some(5))
    );
    let names = task_names(run);
    assert_eq!(names, ["CONVERT_OMERO_TO_TIFF", "_SLURM_Image_Transfer.py"]);
    assert_eq!(
        run["tasks"][0]["result_message"]
            .as_str()
            .map(|m| m.starts_with("stage succeeded")),
        Some(true),
        "{run}"
    );
    assert_eq!(run["tasks"][1]["status"], "TRANSFERRING");
    assert_reencodes(&sa);
    // BIOMERO never ran here: its followers start from nothing, replay every event and agree
    assert_eq!(biomero_oracle(&sa, &["catch-up"]), views);

    // cancelled while it waits: the run fails with the reason, the open task with it
    let c = http_post(&d.base, "/api/v1/submissions/bmrun-1/cancel", &json!({}));
    assert!(c["submission"].is_object(), "{c}");
    wait_submission(&d, "bmrun-1", 60, |v| state(v) == "cancelled");
    caught_up(&d, 60);
    let views = biomero_oracle(&sa, &["views"]);
    let progress = view_row(
        &views,
        "biomero_workflow_progress_view",
        "workflow_id",
        &json!(wf),
    );
    assert_eq!(progress["status"], "FAILED", "{progress}");
    let runs = biomero_oracle(&sa, &["read", &wf]);
    assert_eq!(runs[0]["tasks"][1]["status"], "CANCELLED", "{runs}");
    assert_eq!(
        runs[0]["tasks"][1]["result_message"],
        "cancelled on request"
    );
    // the followers, now behind by the cancellation, catch up to the same rows
    assert_eq!(biomero_oracle(&sa, &["catch-up"]), views);
    assert_eq!(biomero_oracle(&sa, &["rebuild"]), views);
    // every event once: one row per (aggregate, version), versions without gaps
    assert_versions_contiguous(&url);
    // an admin-token document cannot claim OMERO ids: they come from a session only
    let r = http_post(
        &d.base,
        "/api/v1/submissions",
        &json!({"version": 1, "id": "forged-1", "workflow": "cellpose",
                "inputs": {"omero": [{"type": "Image", "id": ids::IMG_EXTERNAL}]},
                "user": {"name": "alice", "group": "Lab A", "id": 1, "group_id": 1}}),
    );
    assert_eq!(r["error"]["fields"][0]["field"], "user.id", "{r}");

    // a month on, with `keep_history_days = 30`: the history is cut to the event that ended
    // it, and what BIOMERO shows of the run stays as it was, a note written after the cut too
    drop(d);
    let whole = finished_days_ago(&s.dir.path().join("queue.sqlite"), "bmrun-1", 31);
    let mut settings = std::fs::read_to_string(&s.settings).unwrap();
    settings.push_str("\nkeep_history_days = 30\n");
    std::fs::write(&s.settings, settings).unwrap();
    let d = start_tracked(&s, &sa);
    let v = wait_submission(&d, "bmrun-1", 60, |v| {
        v["events"].as_array().is_some_and(|e| e.len() < whole)
    });
    let kept = v["events"].as_array().unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["outcome"], "cancelled", "{kept:?}");
    assert_eq!(kept[0]["seq"].as_u64(), Some(whole as u64));
    assert!(
        d.log_text().contains("histories cut to their last event"),
        "{}",
        d.log_text()
    );
    note(
        &s.dir.path().join("queue.sqlite"),
        "bmrun-1",
        &json!({"by": "an admin", "made": ["nothing"]}),
    );
    let ready = caught_up(&d, 60);
    assert_eq!(ready["biomero_events"]["error"], Value::Null, "{ready}");
    assert_eq!(biomero_oracle(&sa, &["views"]), views);
    assert_eq!(biomero_oracle(&sa, &["rebuild"]), views);
    assert_versions_contiguous(&url);
    assert!(
        !d.log_text().contains("holds other events"),
        "{}",
        d.log_text()
    );
}

/// Ages submission `id` of the SQLite queue at `db` by `days` (as if it had finished then);
/// returns how many events its history has.
fn finished_days_ago(db: &std::path::Path, id: &str, days: i64) -> usize {
    use sqlx::Connection as _;
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query(
            "UPDATE biomero_stage_submissions SET updated_at = updated_at - $1 * 86400000 WHERE id = $2",
        )
        .bind(days)
        .bind(id)
        .execute(&mut c)
        .await
        .unwrap();
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM biomero_stage_events WHERE submission_id = $1")
                .bind(id)
                .fetch_one(&mut c)
                .await
                .unwrap();
        usize::try_from(n).unwrap()
    })
}

/// Writes a note into submission `id`'s history in the SQLite queue at `db`, as the daemon does.
fn note(db: &std::path::Path, id: &str, detail: &Value) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = stage_store::Store::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        store.note(id, "attended", detail).await.unwrap();
        store.close().await;
    });
}

#[test]
fn with_tracking_off_nothing_is_written() {
    let (url, sa) = biomero_store();
    let s = omero_site(64, "");
    let ini = s.dir.path().join("slurm-config.ini");
    let text = std::fs::read_to_string(stage_tests::repo_root().join("config/slurm-config.ini"))
        .unwrap()
        .replace("track_workflows = True", "track_workflows = False");
    std::fs::write(&ini, text).unwrap();
    let settings = std::fs::read_to_string(&s.settings).unwrap();
    let line = settings
        .lines()
        .find(|l| l.starts_with("slurm_config"))
        .unwrap()
        .to_owned();
    std::fs::write(
        &s.settings,
        settings.replace(&line, &format!("slurm_config = \"{}\"", ini.display())),
    )
    .unwrap();
    let d = start_tracked(&s, &sa);
    let r = http_post(
        &d.base,
        "/api/v1/submissions",
        &json!({"version": 1, "id": "off-1", "workflow": "cellpose",
                "inputs": {"omero": [{"type": "Image", "id": ids::IMG_EXTERNAL}]},
                "user": {"name": "alice", "group": "Lab A"}}),
    );
    assert_eq!(r["created"], true, "{r}");
    wait_submission(&d, "off-1", 120, |v| state(v) == "staged");
    let ready = http_get(&d.base, "/readyz");
    assert!(
        ready["biomero_events"]["off"]
            .as_str()
            .is_some_and(|o| o.contains("track_workflows")),
        "{ready}"
    );
    let v = http_get(&d.base, "/api/v1/submissions/off-1");
    assert!(v["biomero"]["off"].is_string(), "{v}");
    // not even the tables: BIOMERO's store is left as it was
    assert_eq!(
        psql(&url, "SELECT to_regclass('workflowtracker_events') IS NULL"),
        "t"
    );
}

/// The site's `slurm-config.ini` with a Zarr workflow (`zcopy`) and BIOMERO's store at `sa`.
fn with_zarr_and_store(s: &Site, sa: &str) {
    let ini = s.dir.path().join("slurm-config.ini");
    let text = std::fs::read_to_string(&ini).unwrap().replace(
        "[UI]\nplate_workflows = [\"pcopy\"]\n",
        "zcopy = zcopy\nzcopy_repo = https://github.com/test-lab/W_Copy/tree/v1.0.0\nzcopy_job = copy.sh\n[UI]\nplate_workflows = [\"pcopy\"]\nzarr_workflows = [\"zcopy\"]\n",
    );
    assert!(text.contains("zarr_workflows"), "{text}");
    std::fs::write(&ini, text).unwrap();
    track_in(s, sa);
}

#[test]
#[allow(clippy::too_many_lines)]
fn biomero_reads_our_runs_on_slurm_and_rebuilds_the_same_views() {
    let (importer_url, importer_sa) = importer_db();
    let (url, sa) = biomero_store();
    let s = site(
        "bmevents",
        "",
        &format!("importer_database_url = \"{importer_url}\"\nimport_poll_secs = 1\n"),
    );
    with_zarr_and_store(&s, &sa);
    // BIOMERO ran here first: its tables exist and its followers have read its own run
    biomero_oracle(&sa, &["record"]);
    let tracked_before = psql(
        &url,
        "SELECT notification_id FROM workflowprogress_tracking WHERE application_name = 'WorkflowTracker'",
    );
    let importer = TestImporter::start(&importer_sa, &[]);
    let d = start(&s, &[]);
    submit_as(&s, &d, "bm-tiff", "copy", "alice");
    submit_as(&s, &d, "bm-zarr", "zcopy", "alice");
    submit_plate(&s, &d, "bm-plate", 7);
    submit_as(&s, &d, "bm-fail", "fail", "alice");
    submit_as(&s, &d, "bm-cancel", "slow", "alice");
    let v = wait_submission(&d, "bm-cancel", 120, |v| {
        v["submission"]["data"]["submit"]["job_id"].is_u64()
    });
    // the job is followed a while, then cancelled
    let cancel_job = v["submission"]["data"]["submit"]["job_id"]
        .as_u64()
        .unwrap();
    wait_submission(&d, "bm-cancel", 60, |v| {
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["outcome"] == "progress")
    });
    http_post(&d.base, "/api/v1/submissions/bm-cancel/cancel", &json!({}));
    let expected = [
        ("bm-tiff", "copy", "imported"),
        ("bm-zarr", "zcopy", "imported"),
        ("bm-plate", "pcopy", "imported"),
        ("bm-fail", "fail", "failed"),
        ("bm-cancel", "slow", "cancelled"),
    ];
    let mut subs = Vec::new();
    for (id, _, want) in expected {
        let v = wait_submission(&d, id, 300, |v| {
            matches!(state(v), "imported" | "failed" | "cancelled")
        });
        assert_eq!(state(&v), want, "{id}: {v}\n{}", d.log_text());
        subs.push(v);
    }
    drop(importer);
    caught_up(&d, 60);
    // the metrics saw the jobs, the imports and the events written
    let m = std::process::Command::new("curl")
        .args(["-sS", &format!("{}/metrics", d.base)])
        .output()
        .unwrap();
    let families = stage_tests::parse_metrics(&String::from_utf8_lossy(&m.stdout));
    let value = |sample: &str, labels: &[(&str, &str)]| {
        stage_tests::metric_value(&families, sample, labels)
            .unwrap_or_else(|| panic!("no {sample} {labels:?} in {families}"))
    };
    for wf in ["copy", "zcopy", "pcopy"] {
        assert!(value("biomero_stage_slurm_run_seconds_count", &[("workflow", wf)]) >= 1.0);
        assert!(
            value(
                "biomero_stage_slurm_queue_wait_seconds_count",
                &[("workflow", wf)]
            ) >= 1.0
        );
        assert!(
            value(
                "biomero_stage_import_latency_seconds_count",
                &[("workflow", wf)]
            ) >= 1.0
        );
    }
    assert!(value("biomero_stage_biomero_events_written_total", &[]) > 50.0);
    assert!(
        value("biomero_stage_biomero_events_waiting", &[]) < 0.5,
        "nothing waits"
    );
    assert!(
        value(
            "biomero_stage_transferred_bytes_total",
            &[("direction", "uploaded")]
        ) > 0.0
    );
    assert!(
        value(
            "biomero_stage_failures_total",
            &[("step", "follow"), ("reason", "job")]
        ) >= 1.0
    );
    let wf: Vec<String> = expected
        .iter()
        .map(|(id, _, _)| workflow_id(&d, id))
        .collect();
    let views = biomero_oracle(&sa, &["views"]);
    let mut args = vec!["read"];
    args.extend(wf.iter().map(String::as_str));
    let runs = biomero_oracle(&sa, &args);
    for (n, (id, workflow, want)) in expected.iter().enumerate() {
        let run = &runs[n];
        let progress = view_row(
            &views,
            "biomero_workflow_progress_view",
            "workflow_id",
            &json!(wf[n]),
        );
        // submissions through the admin API carry OMERO names only: BIOMERO's -1 for no id
        assert_eq!(
            (run["user"].as_i64(), run["group"].as_i64()),
            (Some(-1), Some(-1)),
            "{id}"
        );
        assert_eq!(progress["main_task_name"], *workflow, "{id}: {progress}");
        let tasks = run["tasks"].as_array().unwrap();
        let job = tasks
            .iter()
            .find(|t| t["task_name"] == *workflow)
            .unwrap_or_else(|| panic!("{id}: no task of the workflow: {run}"));
        let job_id = subs[n]["submission"]["data"]["submit"]["job_id"]
            .as_u64()
            .unwrap();
        assert_eq!(job["job_ids"], json!([job_id.to_string()]), "{id}");
        let accounted = view_row(&views, "biomero_job_view", "slurm_job_id", &json!(job_id));
        assert_eq!(accounted["task_id"], job["id"], "{id}");
        let job_progress = view_row(
            &views,
            "biomero_job_progress_view",
            "slurm_job_id",
            &json!(job_id),
        );
        let execution = view_row(&views, "biomero_task_execution", "task_id", &job["id"]);
        assert!(
            execution["end_time"].as_str() >= execution["start_time"].as_str(),
            "{execution}"
        );
        match *want {
            "imported" => {
                assert_eq!(
                    (progress["status"].as_str(), progress["progress"].as_str()),
                    (Some("DONE"), Some("100%")),
                    "{id}"
                );
                assert_eq!(progress["task"], "SLURM_Import_Results.py");
                let names: Vec<&str> = tasks
                    .iter()
                    .map(|t| t["task_name"].as_str().unwrap())
                    .collect();
                let convert = if *workflow == "copy" {
                    "CONVERT_OMERO_TO_TIFF"
                } else {
                    "CONVERT_OMERO_TO_ZARR"
                };
                assert_eq!(
                    names,
                    [
                        convert,
                        "_SLURM_Image_Transfer.py",
                        "SLURM_Run_Workflow.py",
                        workflow,
                        "SLURM_Get_Results.py",
                        "SLURM_Import_Results.py"
                    ],
                    "{id}"
                );
                assert_eq!(tasks[5]["status"], "IMPORTED");
                assert_eq!(job_progress["status"], "COMPLETED", "{id}");
                assert_eq!(job["result_message"], format!("Job {job_id} is COMPLETED."));
            }
            "failed" => {
                assert_eq!(progress["status"], "FAILED", "{id}");
                let reason = subs[n]["submission"]["error"].as_str().unwrap();
                assert_eq!(job["result_message"], reason, "{id}");
                assert_eq!(execution["error_type"], reason, "{id}");
                assert_eq!(job_progress["status"], job["status"], "{id}");
                assert!(
                    job["status"].as_str().unwrap().starts_with("FAILED"),
                    "{job}"
                );
            }
            _ => {
                assert_eq!(progress["status"], "FAILED", "{id}");
                assert_eq!(job_id, cancel_job);
                assert_eq!(job["status"], "CANCELLED", "{job}");
                assert_eq!(execution["error_type"], "cancelled on request");
            }
        }
    }
    assert_reencodes(&sa);
    // BIOMERO's followers had read everything before our runs, so they were moved past
    // our events with the rows we wrote; catching up finds nothing to change
    let tracked = psql(
        &url,
        "SELECT notification_id FROM workflowprogress_tracking WHERE application_name = 'WorkflowTracker'",
    );
    assert_eq!(
        tracked,
        psql(&url, "SELECT max(id) FROM workflowtracker_events")
    );
    assert_ne!(tracked, tracked_before);
    assert_eq!(biomero_oracle(&sa, &["catch-up"]), views);
    // BIOMERO records a run of its own after ours: its followers read only that one
    biomero_oracle(&sa, &["record"]);
    let with_theirs = biomero_oracle(&sa, &["views"]);
    assert_eq!(
        with_theirs["biomero_workflow_progress_view"]
            .as_array()
            .unwrap()
            .len(),
        views["biomero_workflow_progress_view"]
            .as_array()
            .unwrap()
            .len()
            + 1
    );
    // and `Slurm Init`'s rebuild from the events gives every row of ours as it is. (Not
    // BIOMERO's first run: its rebuild replays from notification 1 exclusive, so the run
    // whose WorkflowInitiated is notification 1 loses its rows; ours never is, see writer.rs)
    let jobs: Vec<u64> = subs
        .iter()
        .map(|v| {
            v["submission"]["data"]["submit"]["job_id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let rebuilt = biomero_oracle(&sa, &["rebuild"]);
    assert_eq!(ours(&rebuilt, &runs, &jobs), ours(&views, &runs, &jobs));
    let tasks: usize = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tasks"].as_array().unwrap().len())
        .sum();
    assert_eq!(
        ours(&views, &runs, &jobs)["biomero_task_execution"]
            .as_array()
            .unwrap()
            .len(),
        tasks
    );
    assert_versions_contiguous(&url);
}

/// An admin-API submission of one image of the test OMERO to `cellpose`.
fn submit_omero_image(d: &Daemon, id: &str) {
    let r = http_post(
        &d.base,
        "/api/v1/submissions",
        &json!({"version": 1, "id": id, "workflow": "cellpose",
                "inputs": {"omero": [{"type": "Image", "id": ids::IMG_EXTERNAL}]},
                "user": {"name": "alice", "group": "Lab A"}}),
    );
    assert_eq!(r["created"], true, "{r}");
}

/// The grants deploy/biomero-events.md gives biomero-stage's role on BIOMERO's tables.
fn grant(url: &str, role: &str) {
    psql(
        url,
        &format!(
            "GRANT SELECT, INSERT, UPDATE ON workflowtracker_events, biomero_workflow_progress_view, biomero_task_execution, biomero_job_view, biomero_job_progress_view TO {role};
             GRANT SELECT, UPDATE ON jobaccounting_tracking, jobprogress_tracking, workflowprogress_tracking, workflowanalytics_tracking TO {role};
             GRANT USAGE ON SEQUENCE workflowtracker_events_id_seq TO {role}"
        ),
    );
}

#[test]
fn events_wait_while_biomeros_store_refuses_us_and_land_in_order_when_it_is_back() {
    let (url, owner_sa) = biomero_store();
    // BIOMERO made its tables; biomero-stage writes them with a role of its own
    biomero_oracle(&owner_sa, &["record"]);
    let role = format!("bst_writer_{}", std::process::id());
    psql(&url, &format!("DROP ROLE IF EXISTS {role}"));
    psql(&url, &format!("CREATE ROLE {role} LOGIN"));
    grant(&url, &role);
    let sa = owner_sa.replacen("postgres@", &format!("{role}@"), 1);
    let s = omero_site(64, "");
    let d = start_tracked(&s, &sa);
    submit_omero_image(&d, "out-1");
    wait_submission(&d, "out-1", 120, |v| state(v) == "staged");
    caught_up(&d, 60);
    // the store refuses us: the pipeline goes on, the events wait, /readyz names the lag
    psql(
        &url,
        &format!("REVOKE INSERT ON workflowtracker_events FROM {role}"),
    );
    submit_omero_image(&d, "out-2");
    wait_submission(&d, "out-2", 120, |v| state(v) == "staged");
    let started = std::time::Instant::now();
    let ready = loop {
        let r = http_get(&d.base, "/readyz");
        if r["biomero_events"]["error"].is_string()
            && r["biomero_events"]["waiting"]["events"].as_i64() > Some(0)
        {
            break r;
        }
        assert!(started.elapsed().as_secs() < 30, "{r}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(
        ready["ready"], true,
        "a store that is behind does not stop the daemon: {ready}"
    );
    let error = ready["biomero_events"]["error"].as_str().unwrap();
    assert!(
        error.contains("refused") && error.contains("grant"),
        "{error}"
    );
    assert!(!error.contains("password"), "{error}");
    // a second outage of another kind while it waits: our step's cancellation is queued too
    let c = http_post(&d.base, "/api/v1/submissions/out-1/cancel", &json!({}));
    assert!(c["submission"].is_object(), "{c}");
    wait_submission(&d, "out-1", 60, |v| state(v) == "cancelled");
    // back: every waiting event lands, in order, once
    grant(&url, &role);
    caught_up(&d, 60);
    assert_versions_contiguous(&url);
    assert_reencodes(&owner_sa);
    let wf = [workflow_id(&d, "out-1"), workflow_id(&d, "out-2")];
    let runs = biomero_oracle(&owner_sa, &["read", &wf[0], &wf[1]]);
    let views = biomero_oracle(&owner_sa, &["views"]);
    assert_eq!(
        view_row(
            &views,
            "biomero_workflow_progress_view",
            "workflow_id",
            &json!(wf[0])
        )["status"],
        "FAILED"
    );
    assert_eq!(
        view_row(
            &views,
            "biomero_workflow_progress_view",
            "workflow_id",
            &json!(wf[1])
        )["status"],
        "TRANSFERRING"
    );
    // in order: each run's events have increasing notification ids in version order
    let disorder = psql(
        &url,
        "SELECT count(*) FROM (SELECT originator_id, originator_version, id, lag(id) OVER (PARTITION BY originator_id ORDER BY originator_version) AS prev FROM workflowtracker_events) e WHERE prev > id",
    );
    assert_eq!(disorder, "0");
    assert_eq!(
        ours(&biomero_oracle(&owner_sa, &["catch-up"]), &runs, &[]),
        ours(&views, &runs, &[])
    );
    drop(d);
    psql(&url, &format!("DROP OWNED BY {role}; DROP ROLE {role}"));
}

#[test]
fn a_daemon_killed_at_any_instant_writes_every_event_exactly_once() {
    const N: usize = 12;
    let (url, sa) = biomero_store();
    let s = omero_site(64, "");
    let args = ["--poll-ms", "100", "--retry-ms", "200", "--lease-secs", "2"];
    let env = [
        ("BIOMERO_STAGE_OMERO_PASSWORD", PASSWORD),
        ("SQLALCHEMY_URL", sa.as_str()),
    ];
    let d = Daemon::start(s.dir.path(), &s.settings, s.port, &args, &env);
    let ids: Vec<String> = (0..N).map(|i| format!("k-{i}")).collect();
    for id in &ids {
        submit_omero_image(&d, id);
    }
    drop(d);
    // killed (SIGKILL) again and again while it stages and writes BIOMERO's store
    let mut kills = 0;
    for pause in [350_u64, 700, 250, 900, 500, 1200] {
        let d = Daemon::start(s.dir.path(), &s.settings, s.port, &args, &env);
        std::thread::sleep(std::time::Duration::from_millis(pause));
        drop(d);
        kills += 1;
    }
    let d = Daemon::start(s.dir.path(), &s.settings, s.port, &args, &env);
    for id in &ids {
        wait_submission(&d, id, 180, |v| state(v) == "staged");
        http_post(
            &d.base,
            &format!("/api/v1/submissions/{id}/cancel"),
            &json!({}),
        );
    }
    for id in &ids {
        wait_submission(&d, id, 60, |v| state(v) == "cancelled");
    }
    caught_up(&d, 120);
    assert_versions_contiguous(&url);
    assert_reencodes(&sa);
    let wf: Vec<String> = ids.iter().map(|id| workflow_id(&d, id)).collect();
    let mut args = vec!["read"];
    args.extend(wf.iter().map(String::as_str));
    let runs = biomero_oracle(&sa, &args);
    for (n, run) in runs.as_array().unwrap().iter().enumerate() {
        let names = task_names(run);
        assert_eq!(
            names,
            ["CONVERT_OMERO_TO_TIFF", "_SLURM_Image_Transfer.py"],
            "{}",
            ids[n]
        );
    }
    let views = biomero_oracle(&sa, &["views"]);
    assert_eq!(
        views["biomero_workflow_progress_view"]
            .as_array()
            .unwrap()
            .len(),
        N,
        "one WorkflowRun per submission, {kills} kills notwithstanding"
    );
    assert!(
        views["biomero_workflow_progress_view"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "FAILED")
    );
    assert_eq!(biomero_oracle(&sa, &["catch-up"]), views);
    assert_eq!(biomero_oracle(&sa, &["rebuild"]), views);
}
