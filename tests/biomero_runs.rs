//! BIOMERO run requests reach the daemon as OMERO.biomero 1.6.1's
//! `run_workflow_script` builds them: the identity comes from the user's OMERO
//! session (joined through the OMERO stand-in exactly as OMERO.web's login
//! joins one), the inputs become one submission per workflow and batch, the
//! destination is found or created as the user, and every refusal names its key
//! and queues nothing.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use serde_json::{Value, json};
use stage_tests::omero::{OmeroSite, PASSWORD, ids, omero_site};
use stage_tests::{Daemon, free_port, http_get};

type Site = OmeroSite;

/// The standard world with no cluster: these tests are about intake.
fn site() -> Site {
    omero_site(64, "")
}

/// The site's daemon.
fn start(s: &Site) -> Daemon {
    Daemon::start(
        s.dir.path(),
        &s.settings,
        s.port,
        &["--poll-ms", "200"],
        &[("BIOMERO_STAGE_OMERO_PASSWORD", PASSWORD)],
    )
}

/// A session of alice (user 60), a member of Lab A (group 5) only, acting in it.
fn alice(s: &Site) -> String {
    s.omero.open_user_session((60, "alice"), (5, "Lab A"), &[5])
}

/// `POST /api/v1/biomero/runs` with the admin token and, when given, the session key: (status, body).
fn post_run(base: &str, body: &Value, key: Option<&str>) -> (u16, Value) {
    let mut args = vec![
        "-sS".to_owned(),
        "-w".into(),
        "\n%{http_code}".into(),
        "-H".into(),
        "Authorization: Bearer test-token".into(),
        "-H".into(),
        "Content-Type: application/json".into(),
        "--data-binary".into(),
        body.to_string(),
    ];
    if let Some(k) = key {
        args.extend(["-H".into(), format!("X-OMERO-Session-Key: {k}")]);
    }
    args.push(format!("{base}/api/v1/biomero/runs"));
    let out = Command::new("curl").args(&args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (json_text, code) = text.rsplit_once('\n').unwrap();
    (
        code.trim().parse().unwrap(),
        serde_json::from_str(json_text).unwrap_or(Value::Null),
    )
}

/// The inputs OMERO.biomero 1.6.1's `run_workflow_script` builds for `workflow`
/// (omero_biomero/analyzer_views.py, line by line): every fixed key it always
/// sends, with the frontend's values, then the caller's.
fn omero_biomero_inputs(
    workflow: &str,
    version: &str,
    data_type: &str,
    ids: &[i64],
    extra: &Value,
) -> Value {
    let mut i = json!({
        workflow: true,
        format!("{workflow}_Version"): version,
        "IDs": ids,
        "Data_Type": data_type,
        "E-mail": false,
        "Use_ZARR_Format": false,
        "OME-Zarr_version": "0.4",
        "Select how to import your results (one or more)": true,
        "1) Zip attachment to parent": false,
        "2) Attach to original images": false,
        "3a) Import into NEW Dataset": "--NO THANK YOU--",
        "3a) Import into NEW Screen": "--NO THANK YOU--",
        "3b) Allow duplicate dataset (name)?": false,
        "3c) Rename the imported images": "--NO THANK YOU--",
        "4) Upload result CSVs as OMERO tables": false,
        "5) Attach individual non-image output files": false,
        "6a) Create ROIs from label images": false,
        "6b) Label image pattern": "",
        "6c) ROI shape": "Polygon",
        "6g) ROI color override": "",
    });
    for (k, v) in extra.as_object().unwrap() {
        i[k] = v.clone();
    }
    i
}

fn request(inputs: &Value) -> Value {
    json!({"version": 1, "script": "SLURM_Run_Workflow.py", "inputs": inputs})
}

fn queued(d: &Daemon) -> usize {
    http_get(&d.base, "/api/v1/submissions?limit=1000")["submissions"]
        .as_array()
        .map_or(0, Vec::len)
}

#[test]
fn omero_biomero_runs_become_submissions_of_the_sessions_user() {
    let s = site();
    let d = start(&s);
    let alice = alice(&s);

    // a Dataset's images to a TIFF workflow, into a new Dataset by name
    let inputs = omero_biomero_inputs(
        "cellpose",
        "v1.4.0",
        "Image",
        &[ids::IMG_EXTERNAL, ids::IMG_ANNOTATED],
        &json!({"cellpose_|_diameter": 20, "3a) Import into NEW Dataset": "cellpose results", "Cleanup?": true}),
    );
    let (code, r) = post_run(&d.base, &request(&inputs), Some(&alice));
    assert_eq!(code, 201, "{r}");
    let run = &r["run"];
    assert_eq!(
        (run["user"].as_str(), run["group"].as_str()),
        (Some("alice"), Some("Lab A")),
        "{r}"
    );
    let subs = run["submissions"].as_array().unwrap();
    assert_eq!(subs.len(), 1, "{r}");
    let created = s.omero.created();
    assert_eq!(
        created.len(),
        1,
        "the Dataset is created as the user: {created:?}"
    );
    assert_eq!(
        (created[0].0.as_str(), created[0].2.as_str(), created[0].3),
        ("Dataset", "cellpose results", 5)
    );
    let id = subs[0][0].as_str().unwrap();
    let doc = &http_get(&d.base, &format!("/api/v1/submissions/{id}"))["submission"]["request"];
    assert_eq!(
        doc["user"],
        json!({"name": "alice", "group": "Lab A", "id": 60, "group_id": 5}),
        "{doc}"
    );
    assert_eq!(
        doc["results"],
        json!({"type": "Dataset", "id": created[0].1}),
        "{doc}"
    );
    assert_eq!(doc["parameters"], json!({"diameter": 20}), "{doc}");
    assert_eq!(
        doc["inputs"]["omero"][1],
        json!({"type": "Image", "id": ids::IMG_ANNOTATED})
    );
    assert_eq!(doc["run"], run["run"]);

    // the same name again in another run: the existing Dataset is reused
    let (code, r2) = post_run(&d.base, &request(&inputs), Some(&alice));
    assert_eq!(code, 201, "{r2}");
    assert_eq!(
        s.omero.created().len(),
        1,
        "reused, as BIOMERO does without 3b)"
    );

    // the same run id sent again (a retried script) is the same run, queued once
    let again = json!({"version": 1, "run": run["run"], "script": "SLURM_Run_Workflow.py",
        "inputs": omero_biomero_inputs("cellpose", "v1.4.0", "Image", &[ids::IMG_EXTERNAL, ids::IMG_ANNOTATED],
            &json!({"cellpose_|_diameter": 20, "3a) Import into NEW Dataset": "cellpose results", "Cleanup?": true}))});
    let (code, r3) = post_run(&d.base, &again, Some(&alice));
    assert_eq!(code, 200, "{r3}");
    assert_eq!(r3["run"]["submissions"][0][2], false);

    // 3b) asks for a new Dataset of that name: one per run, and a retried run (the same run
    // id) finds the one it made instead of making another
    let dup = |run: &str| {
        json!({"version": 1, "run": run, "script": "SLURM_Run_Workflow.py",
            "inputs": omero_biomero_inputs("cellpose", "v1.4.0", "Image", &[ids::IMG_EXTERNAL],
                &json!({"3a) Import into NEW Dataset": "cellpose results",
                        "3b) Allow duplicate dataset (name)?": true}))})
    };
    let before = s.omero.created().len();
    let (code, r4) = post_run(&d.base, &dup("dup-run-1"), Some(&alice));
    assert_eq!(code, 201, "{r4}");
    assert_eq!(
        s.omero.created().len(),
        before + 1,
        "3b) makes a new Dataset"
    );
    let made = s.omero.created()[before].1;
    let (code, r5) = post_run(&d.base, &dup("dup-run-1"), Some(&alice));
    assert!(code == 200 || code == 201, "{r5}");
    assert_eq!(
        s.omero.created().len(),
        before + 1,
        "the retried run reuses the Dataset it made: {:?}",
        s.omero.created()
    );
    let id = r4["run"]["submissions"][0][0].as_str().unwrap();
    let doc = &http_get(&d.base, &format!("/api/v1/submissions/{id}"))["submission"]["request"];
    assert_eq!(
        doc["results"],
        json!({"type": "Dataset", "id": made}),
        "{doc}"
    );
    let (code, r6) = post_run(&d.base, &dup("dup-run-2"), Some(&alice));
    assert_eq!(code, 201, "{r6}");
    assert_eq!(
        s.omero.created().len(),
        before + 2,
        "another run with 3b) makes its own Dataset"
    );

    // a Plate to a Zarr plate workflow, into a Screen by id
    let (code, r) = post_run(
        &d.base,
        &request(&omero_biomero_inputs(
            "plate-threshold",
            "v0.1.4",
            "Plate",
            &[ids::PLATE_ZARR],
            &json!({"Use_ZARR_Format": true, "Screen_ID": ids::SCREEN}),
        )),
        Some(&alice),
    );
    assert_eq!(code, 201, "{r}");
    let id = r["run"]["submissions"][0][0].as_str().unwrap().to_owned();
    let doc = &http_get(&d.base, &format!("/api/v1/submissions/{id}"))["submission"]["request"];
    assert_eq!(
        doc["results"],
        json!({"type": "Screen", "id": ids::SCREEN}),
        "{doc}"
    );
    assert_eq!(doc["options"]["ngff_version"], "0.4");

    // two workflows at once: one run, one submission each, listed and cancelled as a whole
    let mut two = omero_biomero_inputs(
        "cellpose",
        "v1.4.0",
        "Image",
        &[ids::IMG_EXTERNAL],
        &json!({}),
    );
    two["stardist"] = json!(true);
    two["stardist_Version"] = json!("v1.3.2");
    let (code, r) = post_run(&d.base, &request(&two), Some(&alice));
    assert_eq!(code, 201, "{r}");
    let run_id = r["run"]["run"].as_str().unwrap().to_owned();
    let workflows: Vec<&str> = r["run"]["submissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s[1].as_str().unwrap())
        .collect();
    assert_eq!(workflows, ["cellpose", "stardist"]);
    let listed = http_get(&d.base, &format!("/api/v1/biomero/runs/{run_id}"));
    assert_eq!(
        listed["submissions"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    let cancelled = stage_tests::http_post(
        &d.base,
        &format!("/api/v1/biomero/runs/{run_id}/cancel"),
        &json!({}),
    );
    assert_eq!(
        cancelled["submissions"].as_array().map(Vec::len),
        Some(2),
        "{cancelled}"
    );

    // a batched run of 5 images with Batch_Size 2: three submissions
    let fields: Vec<i64> = (0..5).map(|i| 1201 + i).collect();
    let mut batched = omero_biomero_inputs(
        "cellpose",
        "v1.4.0",
        "Image",
        &fields,
        &json!({"Batch_Size": 2}),
    );
    batched["3b) Allow duplicate dataset (name)?"] = json!(false);
    let (code, r) = post_run(
        &d.base,
        &json!({"version": 1, "script": "SLURM_Run_Workflow_Batched.py", "inputs": batched}),
        Some(&alice),
    );
    assert_eq!(code, 201, "{r}");
    let mut sizes = Vec::new();
    for sub in r["run"]["submissions"].as_array().unwrap() {
        let doc = &http_get(
            &d.base,
            &format!("/api/v1/submissions/{}", sub[0].as_str().unwrap()),
        )["submission"]["request"];
        sizes.push(doc["inputs"]["omero"].as_array().unwrap().len());
    }
    assert_eq!(sizes, [2, 2, 1]);

    // a Dataset in the batched script is expanded to its images, as BIOMERO does
    let (code, r) = post_run(
        &d.base,
        &json!({"version": 1, "script": "SLURM_Run_Workflow_Batched.py",
            "inputs": omero_biomero_inputs("cellpose", "v1.4.0", "Dataset", &[ids::DATASET], &json!({"Batch_Size": 2}))}),
        Some(&alice),
    );
    assert_eq!(code, 201, "{r}");
    assert_eq!(
        r["run"]["submissions"].as_array().map(Vec::len),
        Some(2),
        "3 images in 2 batches: {r}"
    );

    // options not done yet are accepted and said; that this site has no mail relay too
    s.omero.set_email(60, "alice@facility.example");
    let (code, r) = post_run(
        &d.base,
        &request(&omero_biomero_inputs(
            "cellpose",
            "v1.4.0",
            "Image",
            &[ids::IMG_EXTERNAL],
            &json!({"4) Upload result CSVs as OMERO tables": true, "E-mail": true}),
        )),
        Some(&alice),
    );
    assert_eq!(code, 201, "{r}");
    let notices = r["run"]["notices"].to_string();
    assert!(
        notices.contains("OMERO tables") && notices.contains("no mail relay"),
        "{notices}"
    );
    // and they are in the run's history, where it is followed: in its first event, written
    // with the submission itself
    let id = r["run"]["submissions"][0][0].as_str().unwrap();
    let events = http_get(&d.base, &format!("/api/v1/submissions/{id}"))["events"].clone();
    assert_eq!(events[0]["step"], "intake", "{events}");
    let intake = events[0]["detail"]["notices"].to_string();
    assert!(
        intake.contains("OMERO tables") && intake.contains("no mail relay"),
        "{events}"
    );
}

#[test]
fn a_wrong_run_request_is_refused_by_name_before_anything_is_queued() {
    let s = site();
    let d = start(&s);
    let alice = alice(&s);
    let good = || {
        omero_biomero_inputs(
            "cellpose",
            "v1.4.0",
            "Image",
            &[ids::IMG_EXTERNAL],
            &json!({}),
        )
    };
    let with = |k: &str, v: Value| {
        let mut i = good();
        i[k] = v;
        request(&i)
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "unknown workflow",
            with("cellpose_|_diameter", json!(3)).pipe(|mut r| {
                r["inputs"]["nosuch"] = json!(true);
                r
            }),
            "nosuch",
        ),
        (
            "version not on the cluster",
            with("cellpose_Version", json!("v9.9.9")),
            "cellpose_Version",
        ),
        ("unknown key", with("Colour", json!("blue")), "Colour"),
        (
            "a Dataset to a plate workflow",
            request(&omero_biomero_inputs(
                "plate-threshold",
                "v0.1.4",
                "Dataset",
                &[ids::DATASET],
                &json!({"Use_ZARR_Format": true}),
            )),
            "Data_Type / IDs",
        ),
        (
            "a parameter of the wrong type",
            with("cellpose_|_diameter", json!("big")),
            "cellpose_|_diameter",
        ),
        (
            "zarr forced on a TIFF workflow",
            with("Use_ZARR_Format", json!(true)),
            "Use_ZARR_Format",
        ),
        (
            "a file parameter",
            with("cellpose_|_FILE_model", json!([41])),
            "cellpose_|_FILE_model",
        ),
        (
            "a Dataset of another group",
            with("Dataset_ID", json!(ids::DATASET_OTHER_GROUP)),
            "Dataset_ID",
        ),
    ];
    for (what, body, key) in cases {
        let (code, r) = post_run(&d.base, &body, Some(&alice));
        assert_eq!(code, 422, "{what}: {r}");
        let fields: Vec<&str> = r["error"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        assert!(
            fields.contains(&key),
            "{what}: {key} not in {fields:?}: {r}"
        );
    }
    // identity
    let (code, r) = post_run(&d.base, &request(&good()), None);
    assert_eq!(
        (code, r["error"]["code"].as_str()),
        (403, Some("identity_refused")),
        "missing session: {r}"
    );
    let (code, r) = post_run(
        &d.base,
        &request(&good()),
        Some("00000000-0000-4000-8000-000000000000"),
    );
    assert_eq!(code, 403, "unknown session: {r}");
    let mut forged = request(&good());
    forged["user"] = json!("root");
    let (code, r) = post_run(&d.base, &forged, Some(&alice));
    assert_eq!(code, 403, "forged user: {r}");
    assert!(
        !r.to_string().contains(&alice),
        "the session key is not in an answer"
    );
    assert!(r["error"]["message"].as_str().unwrap().contains("root"));
    let mut foreign = request(&good());
    foreign["group_id"] = json!(6);
    let (code, r) = post_run(&d.base, &foreign, Some(&alice));
    assert_eq!(code, 403, "a group alice is not in: {r}");
    let bob = s
        .omero
        .open_user_session((61, "bob"), (5, "Lab A"), &[5, 6]);
    s.omero.expire_sessions();
    let (code, r) = post_run(&d.base, &request(&good()), Some(&bob));
    assert_eq!(code, 403, "expired session: {r}");
    assert_eq!(queued(&d), 0, "nothing was queued");
    assert!(s.omero.created().is_empty(), "nothing was created in OMERO");
    let log = d.log_text();
    assert!(
        !log.contains(&alice) && !log.contains(&bob),
        "a session key reached the log"
    );
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl Pipe for Value {}

/// The drop-in scripts' own code (everything but the omero-py glue) against the real daemon:
/// the declarations come from its workflows endpoint, and a run handed off through it is queued.
#[test]
fn the_drop_in_scripts_hand_a_run_to_the_daemon() {
    let s = site();
    let d = start(&s);
    let alice = alice(&s);
    let script = r#"
import json, sys
from biomero_stage_omero import declare
from biomero_stage_omero.daemon import Daemon, DaemonError, Settings, run_message
d = Daemon(Settings.load("/nonexistent.ini"))
decl = {p["name"]: p for p in declare.declarations(d.workflows(), False)}
inputs = {p["name"]: p["default"] for p in decl.values() if p["default"] is not None}
inputs.update({"Data_Type": "Image", "IDs": [201], "cellpose": True, "cellpose_Version": decl["cellpose_Version"]["values"][0],
               "Use_ZARR_Format": False, "E-mail": False})
run = d.submit_run("SLURM_Run_Workflow.py", inputs, sys.argv[1], 5)
try:
    d.submit_run("SLURM_Run_Workflow.py", dict(inputs, cellpose_Version="v0"), sys.argv[1], 5)
    refused = None
except DaemonError as e:
    refused = str(e)
print(json.dumps({"versions": decl["cellpose_Version"]["values"], "order": [k for k in decl if not k.count("_") and k[0].islower()],
                  "message": run_message(run), "refused": refused}))
"#;
    let out = Command::new(stage_tests::python())
        .args(["-c", script, &alice])
        .env("PYTHONPATH", stage_tests::repo_root().join("omero-scripts"))
        .env("BIOMERO_STAGE_URL", &d.base)
        .env("BIOMERO_STAGE_TOKEN_FILE", s.dir.path().join("admin-token"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["versions"], json!(["v1.4.0"]), "{v}");
    // slurm-config.ini's order, as BIOMERO lists the workflows
    assert_eq!(
        v["order"],
        json!([
            "cellpose",
            "stardist",
            "cellexpansion",
            "spotcounting",
            "zarr-cellpose",
            "plate-threshold",
            "deconvolve"
        ]),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains(": cellpose"), "{v}");
    let refused = v["refused"].as_str().unwrap();
    assert!(refused.contains("- cellpose_Version:"), "{refused}");
    assert_eq!(queued(&d), 1);
}

/// A free port with an SMTP server (aiosmtpd from PyPI) delivering into `maildir`.
fn smtp_server(maildir: &std::path::Path) -> (std::process::Child, u16) {
    let port = free_port();
    let child = Command::new(stage_tests::python())
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            "aiosmtpd.handlers.Mailbox",
        ])
        .arg(maildir)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "aiosmtpd did not come up"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    (child, port)
}

fn notes(d: &Daemon, id: &str) -> Vec<Value> {
    http_get(&d.base, &format!("/api/v1/submissions/{id}"))["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["step"] == "notify")
        .cloned()
        .collect()
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(1);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn a_run_that_asked_for_mail_mails_its_user_once_when_it_ends() {
    let maildir = tempfile::tempdir().unwrap();
    let (mut smtp, smtp_port) = smtp_server(&maildir.path().join("mail"));
    let s = site();
    let settings = std::fs::read_to_string(&s.settings).unwrap();
    std::fs::write(
        &s.settings,
        format!("{settings}\nsmtp_url = \"smtp://127.0.0.1:{smtp_port}\"\nmail_from = \"stage@facility.example\"\n"),
    )
    .unwrap();
    let d = start(&s);
    let alice = alice(&s);
    s.omero.set_email(60, "alice@facility.example");
    let mut two = omero_biomero_inputs(
        "cellpose",
        "v1.4.0",
        "Image",
        &[ids::IMG_EXTERNAL],
        &json!({"E-mail": true}),
    );
    two["stardist"] = json!(true);
    two["stardist_Version"] = json!("v1.3.2");
    let (code, r) = post_run(&d.base, &request(&two), Some(&alice));
    assert_eq!(code, 201, "{r}");
    let run = r["run"]["run"].as_str().unwrap().to_owned();
    let ids: Vec<String> = r["run"]["submissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[0].as_str().unwrap().to_owned())
        .collect();
    let doc =
        &http_get(&d.base, &format!("/api/v1/submissions/{}", ids[0]))["submission"]["request"];
    assert_eq!(
        doc["options"]["email_to"], "alice@facility.example",
        "the address comes from OMERO: {doc}"
    );
    // the run ends (cancelled while it retries the unreachable cluster): one mail, both noted
    stage_tests::http_post(
        &d.base,
        &format!("/api/v1/biomero/runs/{run}/cancel"),
        &json!({}),
    );
    for id in &ids {
        let n = wait_for("the notification note", || notes(&d, id).pop());
        assert_eq!(
            (n["detail"]["mail"].as_str(), n["detail"]["to"].as_str()),
            (Some("sent"), Some("alice@facility.example")),
            "{n}"
        );
    }
    let new = maildir.path().join("mail/new");
    let mails: Vec<String> = wait_for("the mail", || {
        let m: Vec<String> = std::fs::read_dir(&new)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect();
        (!m.is_empty()).then_some(m)
    });
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(
        std::fs::read_dir(&new).unwrap().count(),
        1,
        "one mail for the run"
    );
    let mail = &mails[0];
    for part in [
        "To: alice@facility.example",
        "From: stage@facility.example",
        &format!("run {run} was cancelled"),
        &ids[0],
        &ids[1],
    ] {
        assert!(mail.contains(part), "{part} not in:\n{mail}");
    }

    // no address in OMERO: the run says so at intake, and its history when it ends
    let bob = s.omero.open_user_session((61, "bob"), (5, "Lab A"), &[5]);
    let (code, r) = post_run(
        &d.base,
        &request(&omero_biomero_inputs(
            "cellpose",
            "v1.4.0",
            "Image",
            &[ids::IMG_EXTERNAL],
            &json!({"E-mail": true}),
        )),
        Some(&bob),
    );
    assert_eq!(code, 201, "{r}");
    assert!(
        r["run"]["notices"]
            .to_string()
            .contains("no e-mail address in OMERO"),
        "{r}"
    );
    let run = r["run"]["run"].as_str().unwrap();
    let id = r["run"]["submissions"][0][0].as_str().unwrap();
    stage_tests::http_post(
        &d.base,
        &format!("/api/v1/biomero/runs/{run}/cancel"),
        &json!({}),
    );
    let n = wait_for("the note", || notes(&d, id).pop());
    assert_eq!(n["detail"]["mail"], "not sent", "{n}");
    assert!(
        n["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("no e-mail address"),
        "{n}"
    );
    let _ = smtp.kill();
    let _ = smtp.wait();
}

/// The same run request through the command line: the session from `$OMERO_SESSION_KEY`,
/// exit 0 with the submissions, exit 1 naming the problem.
#[test]
fn biomero_run_on_the_command_line_checks_the_session_too() {
    let s = site();
    let alice = alice(&s);
    let inputs = s.dir.path().join("inputs.json");
    std::fs::write(
        &inputs,
        omero_biomero_inputs(
            "cellpose",
            "v1.4.0",
            "Image",
            &[ids::IMG_EXTERNAL],
            &json!({}),
        )
        .to_string(),
    )
    .unwrap();
    let run = |key: &str, extra: &[&str]| {
        let mut c = stage_tests::command(s.dir.path());
        c.args([
            "--config",
            s.settings.to_str().unwrap(),
            "biomero-run",
            inputs.to_str().unwrap(),
        ])
        .args(extra)
        .env("OMERO_SESSION_KEY", key)
        .env("BIOMERO_STAGE_OMERO_PASSWORD", PASSWORD);
        stage_tests::text(&c.output().unwrap())
    };
    let (code, out, err) = run(&alice, &["--json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["run"]["user"], "alice", "{v}");
    assert_eq!(v["run"]["submissions"][0][1], "cellpose", "{v}");
    let (code, out, err) = run("00000000-0000-4000-8000-000000000001", &[]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("OMERO refused the session"), "{err}");
    let (code, _, err) = run(&alice, &["--group-id", "6"]);
    assert_eq!(code, 1);
    assert!(err.contains("not a member of group 6"), "{err}");
    assert!(!err.contains(&alice));
}

/// A workflow's file input (`<wf>_|_FILE_<p>`): the FileAnnotation is downloaded as the
/// user at intake, checked against the input's formats and staged in `data/in/<p>/`.
#[test]
fn attached_files_are_downloaded_checked_and_staged() {
    let s = site();
    let d = start(&s);
    let alice = alice(&s);
    s.omero
        .add_file_annotation(41, "measured psf.tif", b"II*\0 a measured psf");
    s.omero.add_file_annotation(42, "notes.txt", b"not a psf");
    let with_file = |ids: Value| {
        request(&omero_biomero_inputs(
            "deconvolve",
            "v2.2.1",
            "Image",
            &[ids::IMG_EXTERNAL],
            &json!({"Use_ZARR_Format": true, "deconvolve_|_FILE_psf_file": ids}),
        ))
    };
    // a wrong format, or an annotation that is not there, is refused by its key
    for (ids, why) in [(json!([42]), "formats"), (json!([99]), "does not exist")] {
        let (code, r) = post_run(&d.base, &with_file(ids), Some(&alice));
        assert_eq!(code, 422, "{r}");
        let f = &r["error"]["fields"][0];
        assert_eq!(f["field"], "deconvolve_|_FILE_psf_file", "{r}");
        assert!(f["message"].as_str().unwrap().contains(why), "{r}");
    }
    assert_eq!(queued(&d), 0);
    let staging = s.dir.path().join("state/staging");
    let leftovers: Vec<_> = std::fs::read_dir(&staging)
        .map(|r| r.flatten().collect())
        .unwrap_or_default();
    assert!(
        leftovers.is_empty(),
        "a refused run leaves nothing staged: {leftovers:?}"
    );
    // the right file: in the submission, and on disk where the job will find it
    let (code, r) = post_run(&d.base, &with_file(json!([41])), Some(&alice));
    assert_eq!(code, 201, "{r}");
    let id = r["run"]["submissions"][0][0].as_str().unwrap();
    let doc = &http_get(&d.base, &format!("/api/v1/submissions/{id}"))["submission"]["request"];
    assert_eq!(
        doc["files"],
        json!({"psf_file": [{"annotation": 41, "name": "measured_psf.tif"}]}),
        "{doc}"
    );
    let staged = staging.join(id).join("data/in/psf_file/measured_psf.tif");
    assert_eq!(std::fs::read(&staged).unwrap(), b"II*\0 a measured psf");
}

/// An attended run: the answer's notices say the script makes the tables and ROIs; its
/// progress lists each submission small (no records), and its results are not there to read
/// until they are kept.
#[test]
fn an_attended_run_is_followed_by_its_progress_and_has_no_results_before_they_are_kept() {
    let s = site();
    let d = start(&s);
    let alice = alice(&s);
    let inputs = omero_biomero_inputs(
        "cellpose",
        "v1.4.0",
        "Image",
        &[ids::IMG_EXTERNAL],
        &json!({"4) Upload result CSVs as OMERO tables": true, "6a) Create ROIs from label images": true}),
    );
    let mut body = request(&inputs);
    let (code, handed_off) = post_run(&d.base, &body, Some(&alice));
    assert_eq!(code, 201, "{handed_off}");
    assert!(
        handed_off["run"]["notices"][0]
            .as_str()
            .unwrap()
            .contains("not done by biomero-stage"),
        "{handed_off}"
    );
    let id = handed_off["run"]["submissions"][0][0].as_str().unwrap();
    let doc = &http_get(&d.base, &format!("/api/v1/submissions/{id}"))["submission"]["request"];
    assert_eq!(
        doc["options"]["attach"]["tables_as_files"], true,
        "hand-off attaches the CSVs: {doc}"
    );
    body["attended"] = json!(true);
    let (code, r) = post_run(&d.base, &body, Some(&alice));
    assert_eq!(code, 201, "{r}");
    for n in r["run"]["notices"].as_array().unwrap() {
        assert!(
            n.as_str().unwrap().ends_with(
                "made in your session by the OMERO script when the run has ended (attended mode)"
            ),
            "{r}"
        );
    }
    let run = r["run"]["run"].as_str().unwrap();
    let id = r["run"]["submissions"][0][0].as_str().unwrap();
    let doc = &http_get(&d.base, &format!("/api/v1/submissions/{id}"))["submission"]["request"];
    assert_ne!(
        doc["options"]["attach"]["tables_as_files"], true,
        "the script makes tables: {doc}"
    );
    let p = http_get(&d.base, &format!("/api/v1/biomero/runs/{run}/progress"));
    let entry = &p["submissions"][0];
    assert_eq!(entry["id"], id, "{p}");
    assert_eq!(entry["workflow"], "cellpose", "{p}");
    assert!(
        entry["state"].is_string() && entry.get("data").is_none(),
        "{p}"
    );
    let res = http_get(&d.base, &format!("/api/v1/submissions/{id}/results"));
    assert_eq!(res["error"]["code"], "not_kept", "{res}");
    let missing = http_get(&d.base, "/api/v1/biomero/runs/no-such-run/progress");
    assert_eq!(missing["error"]["code"], "not_found", "{missing}");
}
