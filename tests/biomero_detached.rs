//! BIOMERO 2.9's detached runs are our submissions: BIOMERO's own code
//! (biomero 2.9.0b15, `tests/biomero/oracle.py`) queues launcher tasks exactly
//! as its run script does (`register_detached_launcher`), biomero-stage claims
//! each once, runs it on the local Slurm into the same WorkflowRun, and
//! BIOMERO's own readers, followers and rebuild agree with what it wrote.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stage_tests::biomero_store::{
    assert_reencodes, assert_versions_contiguous, biomero_store, caught_up, ours, start_tracked,
    task_names, track_in, view_row,
};
use stage_tests::omero::{OmeroSite, PASSWORD, TestOmero, USER, ids, omero_site, standard_world};
use stage_tests::site::{assert_one_job_each, cluster_now, site, state};
use stage_tests::{
    Daemon, TestImporter, biomero29_oracle, http_get, importer_db, psql, wait_submission,
};

/// The inputs OMERO.biomero's Run button gives `SLURM_Run_Workflow.py` for one image.
fn script_inputs(workflow: &str, version: &str, image: i64, extra: &Value) -> Value {
    let mut i = json!({
        workflow: true, format!("{workflow}_Version"): version,
        "IDs": [image], "Data_Type": "Image", "E-mail": false, "Use_ZARR_Format": false,
        "OME-Zarr_version": "0.4", "Select how to import your results (one or more)": true,
        "1) Zip attachment to parent": false, "2) Attach to original images": false,
        "3a) Import into NEW Dataset": "--NO THANK YOU--", "3a) Import into NEW Screen": "--NO THANK YOU--",
        "3b) Allow duplicate dataset (name)?": false, "3c) Rename the imported images": "--NO THANK YOU--",
        "4) Upload result CSVs as OMERO tables": false, "5) Attach individual non-image output files": false,
        "6a) Create ROIs from label images": false, "Cleanup?": true,
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            i.as_object_mut().unwrap().remove(k);
        } else {
            i[k] = v.clone();
        }
    }
    i
}

/// A detached run as the 2.9 script queues it: `(user, group, workflows, inputs)`.
#[allow(clippy::needless_pass_by_value)]
fn spec(user: i64, group: i64, workflows: &[&str], inputs: Value) -> Value {
    json!({"user": user, "group": group, "script": "SLURM_Run_Workflow.py",
           "workflows": workflows, "inputs": inputs, "extra": {"zipfile": "detached_run"}})
}

/// Queues `specs` through BIOMERO 2.9's own `register_detached_launcher`: `(run, launcher)` each.
fn launch(sa: &str, specs: &[Value]) -> Vec<(String, String)> {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), Value::from(specs.to_vec()).to_string()).unwrap();
    biomero29_oracle(sa, &["launch", &f.path().display().to_string()])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["workflow"].as_str().unwrap().to_owned(),
                r["launcher"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The submission biomero-stage makes of a launcher (one workflow, no batches).
fn submission_of(launcher: &str) -> String {
    format!("biomero-{}-1", launcher.replace('-', ""))
}

/// How many `CLAIMED` statuses each launcher has: `launcher → n`.
fn claims(url: &str) -> std::collections::BTreeMap<String, u32> {
    let rows = psql(
        url,
        "SELECT originator_id, count(*) FROM workflowtracker_events WHERE topic = 'biomero.eventsourcing:Task.StatusUpdated' AND convert_from(state, 'UTF8') LIKE '%\"status\":\"CLAIMED\"%' GROUP BY originator_id",
    );
    rows.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (id, n) = l.split_once('|').unwrap();
            (id.to_owned(), n.parse().unwrap())
        })
        .collect()
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The local Slurm site with the OMERO stand-in (alice, user 60 of Lab A, known to it),
/// BIOMERO.importer's database and BIOMERO's store at `sa`, taking detached runs.
fn slurm_omero_site(
    name: &str,
    importer_url: &str,
    sa: &str,
) -> (stage_tests::site::Site, TestOmero) {
    let s = site(name, "", "");
    let (world, _) = standard_world(&s.dir.path().join("data"), 64);
    let omero = TestOmero::start(world);
    omero.add_experimenter(60, "alice", &[5]);
    let settings = std::fs::read_to_string(&s.settings).unwrap();
    std::fs::write(
        &s.settings,
        format!(
            "{settings}omero_url = \"{u}\"\nomero_user = \"{USER}\"\npixel_buffer_url = \"{u}\"\nomero_tile_size = 64\nimporter_database_url = \"{importer_url}\"\nimport_poll_secs = 1\nbiomero_detached = true\n",
            u = omero.url
        ),
    )
    .unwrap();
    track_in(&s, sa);
    (s, omero)
}

fn slurm_env(s: &stage_tests::site::Site) -> [(&'static str, String); 2] {
    [
        ("BIOMERO_STAGE_OMERO_PASSWORD", PASSWORD.to_owned()),
        (
            "BIOMERO_SLURM_CONFIG_FILE",
            s.dir.path().join("slurm-config.ini").display().to_string(),
        ),
    ]
}

#[test]
fn the_result_options_that_are_attachments_are_made_once_in_omero() {
    let (importer_url, importer_sa) = importer_db();
    let (_, sa) = biomero_store();
    let (s, omero) = slurm_omero_site("bmattach", &importer_url, &sa);
    biomero29_oracle(&sa, &["record"]);
    let inputs = script_inputs(
        "copy",
        "v1.0.0",
        ids::DATASET,
        &json!({"Data_Type": "Dataset", "1) Zip attachment to parent": true,
                "2) Attach to original images": true,
                "5) Attach individual non-image output files": true}),
    );
    let runs = launch(&sa, &[spec(60, 5, &["copy"], inputs)]);
    let id = submission_of(&runs[0].1);
    // the fourth upload fails once: the step is tried again, and what it attached before is
    // found there, not attached twice
    omero
        .faults
        .attach_fail_at
        .store(4, std::sync::atomic::Ordering::Relaxed);
    let _importer = TestImporter::start(&importer_sa, &[]);
    let env = slurm_env(&s);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let d = Daemon::start(
        s.dir.path(),
        &s.settings,
        s.port,
        &["--poll-ms", "200", "--retry-ms", "300"],
        &env,
    );
    let v = wait_submission(&d, &id, 300, |v| {
        matches!(state(v), "imported" | "failed" | "cancelled")
    });
    assert_eq!(state(&v), "imported", "{v}\n{}", d.log_text());
    let attached = omero.attached();
    let on = |kind: &str, oid: i64| -> Vec<String> {
        let mut n: Vec<String> = attached
            .iter()
            .filter(|a| a.targets.contains(&(kind.to_owned(), oid)))
            .map(|a| a.name.clone())
            .collect();
        n.sort();
        n
    };
    // 1) and 5): the zip and the non-image outputs on the Dataset the inputs came from
    assert_eq!(
        on("dataset", ids::DATASET),
        [
            format!("{id}_out.zip"),
            "job-env.txt".into(),
            "label.txt".into()
        ],
        "{attached:?}"
    );
    let zip = attached
        .iter()
        .find(|a| a.name.ends_with("_out.zip"))
        .unwrap();
    assert_eq!(zip.mime, "application/zip");
    let zip_path = s.dir.path().join("out.zip");
    std::fs::write(&zip_path, &zip.content).unwrap();
    let listed = std::process::Command::new("python3")
        .args(["-c", "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; print('\\n'.join(sorted(z.namelist())))"])
        .arg(&zip_path)
        .output()
        .unwrap();
    assert!(listed.status.success(), "{listed:?}");
    let names = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        names.contains("biomero-stage-results.json") && names.contains("label.txt"),
        "the zip holds the kept results and their manifest: {names}"
    );
    // 2): each result image on the image it came from, named as BIOMERO names it
    for image in [ids::IMG_EXTERNAL, ids::IMG_ANNOTATED, ids::IMG_TILES] {
        let names = on("image", image);
        assert_eq!(names.len(), 1, "image {image}: {attached:?}");
        assert!(names[0].contains(&format!(".{id}.")), "{names:?}");
    }
    let record = &v["submission"]["data"]["import"];
    let listed = record["attached"].as_array().unwrap();
    assert_eq!(listed.len(), 6, "{record}");
    assert_eq!(
        listed.iter().filter(|a| a["annotation"].is_null()).count(),
        3,
        "the three made before the failure were found, not made again: {record}"
    );
    assert_eq!(attached.len(), 6, "each made once: {attached:?}");
    assert_eq!(
        omero
            .faults
            .attach_calls
            .load(std::sync::atomic::Ordering::Relaxed),
        7
    );
}

#[test]
#[allow(clippy::too_many_lines)]
fn a_detached_run_is_claimed_once_run_on_slurm_into_its_own_workflowrun_and_resumed_after_kill_9() {
    let (importer_url, importer_sa) = importer_db();
    let (url, sa) = biomero_store();
    let (s0, _omero) = slurm_omero_site("bmdetached", &importer_url, &sa);
    // BIOMERO 2.9 ran here first: its tables exist, its followers have read its own run (and
    // the detached run is not notification 1, which BIOMERO's own rebuild never replays)
    biomero29_oracle(&sa, &["record"]);
    let runs = launch(
        &sa,
        &[spec(
            60,
            5,
            &["copy"],
            script_inputs(
                "copy",
                "v1.0.0",
                ids::IMG_EXTERNAL,
                &json!({"Dataset_ID": ids::DATASET}),
            ),
        )],
    );
    let (wf, launcher) = runs[0].clone();
    let id = submission_of(&launcher);
    let importer = TestImporter::start(&importer_sa, &[]);
    let since = cluster_now(&s0);
    let env = [
        ("BIOMERO_STAGE_OMERO_PASSWORD", PASSWORD),
        (
            "BIOMERO_SLURM_CONFIG_FILE",
            &s0.dir.path().join("slurm-config.ini").display().to_string(),
        ),
    ];
    let args = ["--poll-ms", "200", "--retry-ms", "300", "--lease-secs", "2"];
    // killed (SIGKILL) the moment its claim is in BIOMERO's store, before any job exists
    let d = Daemon::start(s0.dir.path(), &s0.settings, s0.port, &args, &env);
    wait_until("the claim", 60, || claims(&url).contains_key(&launcher));
    drop(d);
    let d = Daemon::start(s0.dir.path(), &s0.settings, s0.port, &args, &env);
    let v = wait_submission(&d, &id, 300, |v| {
        matches!(state(v), "imported" | "failed" | "cancelled")
    });
    assert_eq!(state(&v), "imported", "{v}\n{}", d.log_text());
    drop(importer);
    // one claim, one Slurm job, as the user BIOMERO recorded
    assert_eq!(claims(&url)[&launcher], 1);
    assert_one_job_each(&s0, &since, std::slice::from_ref(&id));
    assert_eq!(v["submission"]["request"]["user"]["name"], "alice", "{v}");
    assert_eq!(v["submission"]["request"]["user"]["group"], "Lab A");
    // the API names the run BIOMERO made, not one of our own
    assert_eq!(v["biomero"]["workflow_id"], wf, "{v}");
    assert!(
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["detail"]["notices"].to_string().contains("zipfile")),
        "the derived value is named in the history: {v}"
    );
    caught_up(&d, 60);
    // BIOMERO's tracker reads one run: its launcher, then our tasks, with the job
    let read = biomero29_oracle(&sa, &["read", &wf]);
    let run = &read[0];
    assert_eq!(
        (run["user"].as_i64(), run["group"].as_i64()),
        (Some(60), Some(5))
    );
    let names = task_names(run);
    assert_eq!(
        names,
        [
            "SLURM_Run_Workflow.py",
            "CONVERT_OMERO_TO_TIFF",
            "_SLURM_Image_Transfer.py",
            "SLURM_Run_Workflow.py",
            "copy",
            "SLURM_Get_Results.py",
            "SLURM_Import_Results.py"
        ],
        "{run}"
    );
    assert_eq!(run["tasks"][0]["id"], launcher);
    assert_eq!(run["tasks"][0]["status"], "CLAIMED");
    let job = v["submission"]["data"]["submit"]["job_id"]
        .as_u64()
        .unwrap();
    assert_eq!(run["tasks"][4]["job_ids"], json!([job.to_string()]));
    // what a resumed BIOMERO run reads: the job done and imported, nothing to submit again
    let history = biomero29_oracle(&sa, &["history", &wf]);
    let copy = history["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "copy")
        .unwrap();
    assert_eq!(copy["job_ids"], json!([job.to_string()]));
    assert_eq!(copy["completed"], true, "{history}");
    assert_eq!(history["submitted_job"]["copy"], Value::Null, "{history}");
    assert!(
        history["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["completed"] == true && t["failed"] == false),
        "{history}"
    );
    // the dashboard's row: done, for alice of Lab A, the workflow as its main task
    let views = biomero29_oracle(&sa, &["views"]);
    let progress = view_row(
        &views,
        "biomero_workflow_progress_view",
        "workflow_id",
        &json!(&wf),
    );
    assert_eq!(
        (progress["status"].as_str(), progress["progress"].as_str()),
        (Some("DONE"), Some("100%")),
        "{progress}"
    );
    assert_eq!(
        (progress["user"].as_i64(), progress["group"].as_i64()),
        (Some(60), Some(5))
    );
    assert_eq!(progress["main_task_name"], "copy");
    let launcher_row = view_row(
        &views,
        "biomero_task_execution",
        "task_id",
        &json!(&launcher),
    );
    assert!(
        launcher_row["end_time"].is_string() && launcher_row["error_type"].is_null(),
        "{launcher_row}"
    );
    // BIOMERO 2.9's own followers and rebuild agree with every row written as it happened
    // (the rows of this run: BIOMERO's own first run is notification 1, which its rebuild skips)
    let mine = ours(&views, &read, &[job]);
    assert_eq!(biomero29_oracle(&sa, &["catch-up"]), views);
    assert_eq!(
        ours(&biomero29_oracle(&sa, &["rebuild"]), &read, &[job]),
        mine
    );
    assert_reencodes(&sa);
    assert_versions_contiguous(&url);
}

/// An OMERO site (no cluster: runs wait at the upload) whose daemon takes detached runs.
fn detached_site() -> OmeroSite {
    let s = omero_site(64, "biomero_detached = true\n");
    s.omero.add_experimenter(60, "alice", &[5]);
    s.omero.add_experimenter(61, "bob", &[6]);
    s
}

fn submissions(d: &Daemon) -> Vec<String> {
    http_get(&d.base, "/api/v1/submissions?limit=1000")["submissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn two_daemons_and_biomeros_own_supervisor_claim_each_of_50_launchers_exactly_once() {
    const N: usize = 50;
    let (url, sa) = biomero_store();
    let (a, b) = (detached_site(), detached_site());
    biomero29_oracle(&sa, &["views"]);
    let specs: Vec<Value> = (0..N)
        .map(|_| {
            spec(
                60,
                5,
                &["cellpose"],
                script_inputs("cellpose", "v1.4.0", ids::IMG_EXTERNAL, &json!({})),
            )
        })
        .collect();
    let runs = launch(&sa, &specs);
    // BIOMERO's own supervisor has five of them already
    for (_, l) in &runs[..5] {
        assert_eq!(biomero29_oracle(&sa, &["claim", l])["claimed"], true);
    }
    let (da, db) = (start_tracked(&a, &sa), start_tracked(&b, &sa));
    wait_until("every launcher claimed", 180, || claims(&url).len() == N);
    wait_until("every claimed run queued", 180, || {
        submissions(&da).len() + submissions(&db).len() == N - 5
    });
    let claims = claims(&url);
    assert!(
        claims.values().all(|n| *n == 1),
        "one claim each: {claims:?}"
    );
    let (sa_ids, sb_ids) = (submissions(&da), submissions(&db));
    for (n, (_, l)) in runs.iter().enumerate() {
        let id = submission_of(l);
        let (in_a, in_b) = (sa_ids.contains(&id), sb_ids.contains(&id));
        if n < 5 {
            assert!(!in_a && !in_b, "BIOMERO's own claim is left alone: {id}");
        } else {
            assert!(in_a ^ in_b, "{id}: in a {in_a}, in b {in_b}");
        }
    }
    // both took part (each claims as soon as it sees one)
    let ready = (http_get(&da.base, "/readyz"), http_get(&db.base, "/readyz"));
    let claimed = |r: &Value| r["biomero_detached"]["claimed"].as_u64().unwrap();
    assert_eq!(
        claimed(&ready.0) + claimed(&ready.1),
        (N - 5) as u64,
        "{ready:?}"
    );
    // each claim names its daemon, next to BIOMERO's status
    let named = psql(
        &url,
        "SELECT count(*) FROM workflowtracker_events WHERE topic = 'biomero.eventsourcing:Task.ResultAdded' AND convert_from(state, 'UTF8') LIKE '%claimed by biomero-stage %'",
    );
    assert_eq!(named, (N - 5).to_string());
}

#[test]
fn a_launcher_this_site_cannot_run_fails_its_run_with_the_reason_and_nothing_else_stalls() {
    let (url, sa) = biomero_store();
    let s = detached_site();
    biomero29_oracle(&sa, &["views"]);
    let cellpose = |extra: Value| script_inputs("cellpose", "v1.4.0", ids::IMG_EXTERNAL, &extra);
    let specs = [
        // no IDs
        spec(60, 5, &["cellpose"], cellpose(json!({"IDs": null}))),
        // a workflow this site does not have
        spec(
            60,
            5,
            &["nope"],
            script_inputs("nope", "v1", ids::IMG_EXTERNAL, &json!({})),
        ),
        // a parameter of the wrong type
        spec(
            60,
            5,
            &["cellpose"],
            cellpose(json!({"cellpose_|_diameter": "large"})),
        ),
        // a user who is not a member of the run's group
        spec(61, 5, &["cellpose"], cellpose(json!({}))),
        // and one that is fine, after them
        spec(60, 5, &["cellpose"], cellpose(json!({}))),
    ];
    let runs = launch(&sa, &specs);
    let d = start_tracked(&s, &sa);
    let ok = submission_of(&runs[4].1);
    let v = wait_submission(&d, &ok, 120, |v| state(v) == "staged");
    assert_eq!(state(&v), "staged");
    wait_until("the refused runs failed", 60, || {
        http_get(&d.base, "/readyz")["biomero_detached"]["refused"] == 4
    });
    assert_eq!(
        submissions(&d),
        std::slice::from_ref(&ok),
        "nothing queued for a refused launcher"
    );
    // the accepted run goes on past `staged`: stop the daemon so that the views compared
    // below with BIOMERO's rebuild are not written to between the two reads
    drop(d);
    let views = biomero29_oracle(&sa, &["views"]);
    let expect = [
        "IDs",
        "nope",
        "cellpose_|_diameter",
        "not a member of group 5",
    ];
    for ((wf, launcher), why) in runs.iter().zip(expect) {
        let progress = view_row(
            &views,
            "biomero_workflow_progress_view",
            "workflow_id",
            &json!(wf),
        );
        assert_eq!(progress["status"], "FAILED", "{why}: {progress}");
        let task = view_row(
            &views,
            "biomero_task_execution",
            "task_id",
            &json!(launcher),
        );
        assert!(
            task["error_type"].as_str().is_some_and(|e| e.contains(why)),
            "{why}: {task}"
        );
    }
    assert_versions_contiguous(&url);
    assert_eq!(biomero29_oracle(&sa, &["catch-up"]), views);
}
