//! The daemon as a child process on both queue backends: the admin API (auth,
//! validation errors, idempotency, cancellation, metrics, readiness), the CLI
//! against the same queue, SIGHUP reloads, and a clean SIGTERM.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stage_tests::{Daemon, command, free_port, fresh_pg_database, text, write_daemon_settings};

fn submission(id: &str) -> Value {
    json!({
        "version": 1, "id": id, "workflow": "cellpose",
        "inputs": {"omero": [{"type": "Dataset", "id": 51}]},
        "parameters": {"diameter": 30},
        "user": {"name": "alice", "group": "lab"}
    })
}

async fn wait_for<F: Fn(&Value) -> bool>(http: &reqwest::Client, url: &str, ok: F) -> Value {
    let started = Instant::now();
    loop {
        let v: Value = http.get(url).send().await.unwrap().json().await.unwrap();
        if ok(&v) {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting on {url}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn scenario(queue_url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let settings = write_daemon_settings(dir.path(), queue_url, port, "");
    let daemon = Daemon::start(dir.path(), &settings, port, &["--poll-ms", "200"], &[]);
    let http = reqwest::Client::new();
    let base = &daemon.base;

    // readiness: database, configuration, workers
    let ready = wait_for(&http, &format!("{base}/readyz"), |v| v["ready"] == true).await;
    assert_eq!(ready["workers"]["running"], 2);
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // auth
    let post = |body: Value, token: Option<&str>| {
        let mut r = http.post(format!("{base}/api/v1/submissions")).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let r = post(submission("a1"), None).await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(
        post(submission("a1"), Some("wrong"))
            .await
            .unwrap()
            .status(),
        401
    );

    // validation: every problem with its field
    let bad = json!({
        "version": 1, "workflow": "cellpose",
        "inputs": {"omero": [{"type": "Plate", "id": 0}]},
        "parameters": {"diameter": "big", "bogus": 1},
        "user": {"name": "", "group": "lab"}
    });
    let r = post(bad, Some("test-token")).await.unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    let fields: Vec<&str> = body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    for f in [
        "user.name",
        "inputs.omero[0].id",
        "parameters.diameter",
        "parameters.bogus",
    ] {
        assert!(fields.contains(&f), "{f} missing in {body}");
    }
    let r = http
        .post(format!("{base}/api/v1/submissions"))
        .bearer_auth("test-token")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // the server stops reading an oversized body and drops the connection, so
    // that request goes on a connection of its own, not the shared pool
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/submissions"))
        .bearer_auth("test-token")
        .header(reqwest::header::CONNECTION, "close")
        .body(vec![b' '; 2 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413, "bodies over 1 MiB are refused");

    // idempotent intake
    let r = post(submission("a1"), Some("test-token")).await.unwrap();
    assert_eq!(r.status(), 201);
    let r = post(submission("a1"), Some("test-token")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["created"], false);

    // the pipeline runs what exists and says what it waits for
    let v = wait_for(&http, &format!("{base}/api/v1/submissions/a1"), |v| {
        v["submission"]["waiting_for"].is_string()
    })
    .await;
    let steps: Vec<(&str, &str)> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["step"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(steps, [("intake", "accepted"), ("plan", "waiting")]);

    // the CLI sees and changes the same queue
    let out = command(dir.path())
        .args(["--config", settings.to_str().unwrap(), "status", "--json"])
        .output()
        .unwrap();
    let (code, stdout, stderr) = text(&out);
    assert_eq!(code, 0, "{stderr}");
    let list: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(list["submissions"][0]["id"], "a1");
    let file = dir.path().join("s.json");
    std::fs::write(&file, submission("cli-1").to_string()).unwrap();
    let out = command(dir.path())
        .args([
            "--config",
            settings.to_str().unwrap(),
            "submit",
            file.to_str().unwrap(),
            "--json",
        ])
        .output()
        .unwrap();
    let (code, stdout, _) = text(&out);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&stdout).unwrap()["created"],
        true
    );
    // refused submissions: exit 1 and every problem on stderr
    let refused = |doc: &Value| {
        std::fs::write(&file, doc.to_string()).unwrap();
        let out = command(dir.path())
            .args([
                "--config",
                settings.to_str().unwrap(),
                "submit",
                file.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let (code, _, stderr) = text(&out);
        assert_eq!(code, 1, "{stderr}");
        stderr
    };
    let stderr = refused(
        &json!({"version": 2, "workflow": "ghost", "inputs": {}, "user": {"name": "a", "group": "b"}}),
    );
    assert!(
        stderr.contains("version") && stderr.contains("unknown workflow `ghost`"),
        "{stderr}"
    );
    // results the importer cannot take are refused before any work
    let mut doc = submission("new-ds");
    doc["results"] = json!({"new": "Dataset", "name": "My results"});
    let stderr = refused(&doc);
    assert!(
        stderr.contains("results.new") && stderr.contains("create it in OMERO"),
        "{stderr}"
    );

    // cancellation through the API
    let r = http
        .post(format!("{base}/api/v1/submissions/a1/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(format!("{base}/api/v1/submissions/a1/cancel"))
        .bearer_auth("test-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_for(&http, &format!("{base}/api/v1/submissions/a1"), |v| {
        v["submission"]["state"] == "cancelled"
    })
    .await;
    let r = http
        .post(format!("{base}/api/v1/submissions/a1/cancel"))
        .bearer_auth("test-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        http.get(format!("{base}/api/v1/submissions/nope"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // metrics
    let m = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("biomero_stage_submissions{state=\"cancelled\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("biomero_stage_step_duration_seconds_count{step=\"plan\",outcome=\"waiting\"}"),
        "{m}"
    );
    assert!(m.contains("biomero_stage_workers 2"));

    // SIGHUP reloads the configuration
    let before = http
        .get(format!("{base}/api/v1/workflows"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    daemon.signal("HUP");
    wait_for(&http, &format!("{base}/api/v1/workflows"), |v| {
        v["generation"].as_u64() > before["generation"].as_u64()
    })
    .await;

    // SIGTERM: a clean stop
    daemon.signal("TERM");
    let mut daemon = daemon;
    let started = Instant::now();
    let status = loop {
        if let Some(s) = daemon.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "did not stop: {}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{}", daemon.log_text());
    assert!(daemon.log_text().contains("stopped"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_and_cli_work_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenario(&format!(
        "sqlite://{}",
        dir.path().join("q.sqlite").display()
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_and_cli_work_on_postgres() {
    scenario(&fresh_pg_database("stage_api")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_admin_token_changes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let settings = write_daemon_settings(
        dir.path(),
        &format!("sqlite://{}", dir.path().join("q.sqlite").display()),
        port,
        "",
    );
    let text = std::fs::read_to_string(&settings).unwrap();
    std::fs::write(
        &settings,
        text.lines()
            .filter(|l| !l.starts_with("admin_token_file"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let d = Daemon::start(dir.path(), &settings, port, &[], &[]);
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/submissions", d.base))
        .bearer_auth("anything")
        .json(&submission("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("admin_token_file"));
}
