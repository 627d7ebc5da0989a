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
        let v: Value = http
            .get(url)
            .bearer_auth("test-token")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
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
    // a body declared over 1 MiB is refused from its headers, before any of it is read: the
    // answer comes while the client has sent nothing of the body (a client still writing
    // one would meet the closed connection, so the exchange is made by hand)
    let answer = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = base.trim_start_matches("http://").to_owned();
        let mut conn = tokio::net::TcpStream::connect(&host).await.unwrap();
        let head = format!(
            "POST /api/v1/submissions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer test-token\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            2 << 20
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer))
            .await
            .expect("the refusal comes without the body")
            .unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    };
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "bodies over 1 MiB are refused: {answer}"
    );

    // idempotent intake
    let r = post(submission("a1"), Some("test-token")).await.unwrap();
    assert_eq!(r.status(), 201);
    let r = post(submission("a1"), Some("test-token")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["created"], false);
    // the same id with other content is a conflict that names what differs
    let mut other = submission("a1");
    other["parameters"]["diameter"] = json!(45);
    other["user"]["name"] = json!("mallory");
    let r = post(other, Some("test-token")).await.unwrap();
    assert_eq!(r.status(), 409);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "id_conflict", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("parameters.diameter") && message.contains("user.name"),
        "{message}"
    );
    // reads need the token too; the scheme is matched whatever its case (RFC 7235)
    let a1 = format!("{base}/api/v1/submissions/a1");
    assert_eq!(http.get(&a1).send().await.unwrap().status(), 401);
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let r = http
            .get(&a1)
            .header("Authorization", format!("{scheme} test-token"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
    }
    assert_eq!(
        http.get(&a1)
            .header("Authorization", "Basic test-token")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

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
    // a reload from a file change (no SIGHUP) re-checks what waits on the configuration:
    // the submission is planned again, and waits again because its cause remains
    let before_edit = std::fs::read_to_string(&settings).unwrap();
    std::fs::write(&settings, format!("{before_edit}\n# edited\n")).unwrap();
    wait_for(&http, &format!("{base}/api/v1/submissions/a1"), |v| {
        v["events"]
            .as_array()
            .is_some_and(|e| e.iter().filter(|e| e["outcome"] == "waiting").count() >= 2)
    })
    .await;

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
    // `submit FILE` of a document: (exit code, stdout, stderr)
    let submit = |doc: &Value| {
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
        text(&out)
    };
    // the same document again is the same submission; other content under its id is refused
    let (code, stdout, _) = submit(&submission("cli-1"));
    assert_eq!(code, 0);
    assert!(stdout.contains("already submitted"), "{stdout}");
    let mut changed = submission("cli-1");
    changed["parameters"]["diameter"] = json!(12);
    let (code, _, stderr) = submit(&changed);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("other content") && stderr.contains("parameters.diameter"),
        "{stderr}"
    );
    // refused submissions: exit 1 and every problem on stderr
    let refused = |doc: &Value| {
        let (code, _, stderr) = submit(doc);
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
            .bearer_auth("test-token")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // the list pages: a page of one, then the rest after its `next`, is the whole list
    let get = |path: String| {
        let http = http.clone();
        async move {
            let r = http
                .get(path)
                .bearer_auth("test-token")
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let ids = |v: &Value| -> Vec<String> {
        v["submissions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, all) = get(format!("{base}/api/v1/submissions?limit=1000")).await;
    let (_, first) = get(format!("{base}/api/v1/submissions?limit=1")).await;
    let next = first["next"].as_str().unwrap().to_owned();
    let (code, rest) = get(format!(
        "{base}/api/v1/submissions?limit=1000&before={next}"
    ))
    .await;
    assert_eq!(code, 200, "{rest}");
    assert!(
        rest["next"].is_null(),
        "a page that is not full is the last: {rest}"
    );
    let mut paged = ids(&first);
    paged.extend(ids(&rest));
    assert_eq!(
        paged,
        ids(&all),
        "paging lists every submission once, in order"
    );
    assert!(ids(&all).len() >= 2, "{all}");
    let (code, e) = get(format!("{base}/api/v1/submissions?before=nope")).await;
    assert_eq!(code, 400, "{e}");
    assert!(e.to_string().contains("nope"), "{e}");

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
    // named by the conventions, parsed by a strict OpenMetrics parser, every family documented
    let families = stage_tests::parse_metrics(&m);
    assert_eq!(families["process_resident_memory_bytes"]["type"], "gauge");
    assert!(
        stage_tests::metric_value(&families, "process_resident_memory_bytes", &[]).unwrap() > 1e6
    );
    assert!(stage_tests::metric_value(&families, "process_cpu_seconds_total", &[]).is_some());
    assert_eq!(
        stage_tests::metric_value(&families, "biomero_stage_config_reloads_total", &[]),
        Some(1.0),
        "the load at start"
    );

    // SIGHUP reloads the configuration
    let before = http
        .get(format!("{base}/api/v1/workflows"))
        .bearer_auth("test-token")
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
    // the reload is counted
    let m = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let families = stage_tests::parse_metrics(&m);
    assert!(
        stage_tests::metric_value(&families, "biomero_stage_config_reloads_total", &[]).unwrap()
            >= 2.0,
        "{m}"
    );

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

/// A daemon's settings on a SQLite queue in a new folder: (folder, admin port, settings file).
fn sqlite_site() -> (tempfile::TempDir, u16, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let settings = write_daemon_settings(
        dir.path(),
        &format!("sqlite://{}", dir.path().join("q.sqlite").display()),
        port,
        "",
    );
    (dir, port, settings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_admin_token_changes_are_refused() {
    let (dir, port, settings) = sqlite_site();
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
    // reads without a token: served on loopback
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/submissions", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(d);

    // listening beyond this host without a token, the API is closed to reads too
    let port = free_port();
    let text = std::fs::read_to_string(&settings).unwrap();
    let open = dir.path().join("open.toml");
    let listen = format!("admin_listen = \"0.0.0.0:{port}\"");
    let text = text
        .lines()
        .map(|l| {
            if l.starts_with("admin_listen") {
                listen.as_str()
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&open, text).unwrap();
    let d = Daemon::start(dir.path(), &open, port, &[], &[]);
    for path in [
        "/api/v1/submissions",
        "/api/v1/workflows",
        "/api/v1/check-setup",
    ] {
        let r = reqwest::Client::new()
            .get(format!("{}{path}", d.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
        assert!(r.text().await.unwrap().contains("admin_token_file"));
    }
    // health, readiness and metrics hold no user data and stay open
    for path in ["/healthz", "/metrics"] {
        let r = reqwest::Client::new()
            .get(format!("{}{path}", d.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
}

/// A client that opens a connection and never finishes its headers is disconnected
/// (slowloris); the endpoint keeps answering everyone else meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_headers_never_end_is_disconnected() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (dir, port, settings) = sqlite_site();
    let d = Daemon::start(dir.path(), &settings, port, &[], &[]);
    let mut idle = Vec::new();
    for _ in 0..20 {
        let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        idle.push(c);
    }
    let r = reqwest::Client::new()
        .get(format!("{}/healthz", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "others are served while half-requests wait"
    );
    for mut c in idle {
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(Duration::from_mins(1), c.read(&mut buf))
            .await
            .expect("the half-finished request is closed by the server")
            .unwrap_or(0);
        // closed (0 bytes) or answered with an error status before closing
        assert!(
            n == 0 || String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 4"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_token_reads_and_never_changes() {
    let (dir, port, settings) = sqlite_site();
    let viewer = dir.path().join("viewer-token");
    std::fs::write(&viewer, "viewer-token-0123456789\n").unwrap();
    let mut text = std::fs::read_to_string(&settings).unwrap();
    text.push_str(&format!("\nviewer_token_file = \"{}\"\n", viewer.display()));
    std::fs::write(&settings, text).unwrap();
    let d = Daemon::start(dir.path(), &settings, port, &[], &[]);
    let http = reqwest::Client::new();
    let get = |path: &str, token: Option<&str>| {
        let mut r = http.get(format!("{}{path}", d.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    for path in ["/api/v1/submissions", "/api/v1/workflows", "/"] {
        assert_eq!(
            get(path, Some("viewer-token-0123456789"))
                .await
                .unwrap()
                .status(),
            200,
            "{path}"
        );
        assert_eq!(
            get(path, Some("test-token")).await.unwrap().status(),
            200,
            "{path}"
        );
        // with a token configured, loopback is no excuse
        assert_eq!(get(path, None).await.unwrap().status(), 401, "{path}");
        assert_eq!(
            get(path, Some("wrong")).await.unwrap().status(),
            401,
            "{path}"
        );
    }
    let r = http
        .post(format!("{}/api/v1/submissions", d.base))
        .bearer_auth("viewer-token-0123456789")
        .json(&submission("v-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the viewer token changes nothing");
    let r = http
        .post(format!("{}/api/v1/submissions/any/cancel", d.base))
        .bearer_auth("viewer-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // the page takes it as the password of HTTP Basic, as a browser's prompt sends it
    let r = http
        .get(format!("{}/", d.base))
        .basic_auth("someone", Some("viewer-token-0123456789"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("<h1>biomero-stage</h1>"));
}
