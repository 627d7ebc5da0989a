//! The status page in a real headless browser (Debian's chromium): a daemon on
//! the local Slurm with runs that were imported, failed, cancelled and still
//! running; the DOM chromium builds has a row per run with its state, a run's
//! page its history and why it failed; what a user controls is shown as text,
//! never markup; the page asks for the token when one is set. A phone-sized
//! screenshot is kept in `target/test-artifacts/`.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use serde_json::json;
use stage_tests::site::{site, start, state, submit_as};
use stage_tests::{TestImporter, http_post, importer_db, repo_root, wait_submission};

/// `chromium --headless` on `url`: the DOM it built (`--dump-dom`), and a screenshot at `png`.
fn chromium(url: &str, png: Option<&std::path::Path>) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut c = Command::new("chromium");
    c.args([
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--window-size=412,915",
        "--virtual-time-budget=3000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()));
    match png {
        Some(p) => c.arg(format!("--screenshot={}", p.display())),
        None => c.arg("--dump-dom"),
    };
    let out = c.arg(url).output().unwrap_or_else(|e| {
        panic!("chromium is needed for the status page test (scripts/setup-browser): {e}")
    });
    assert!(
        out.status.success(),
        "chromium {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_status_page_shows_every_run_in_a_real_browser() {
    let (importer_url, importer_sa) = importer_db();
    let s = site(
        "page",
        "",
        &format!("importer_database_url = \"{importer_url}\"\nimport_poll_secs = 1\n"),
    );
    let _importer = TestImporter::start(&importer_sa, &[]);
    let d = start(&s, &[]);
    // a user name that is markup: shown as text, never run
    let hostile = "<img src=x onerror=alert(1)>";
    submit_as(&s, &d, "p-done", "copy", hostile);
    submit_as(&s, &d, "p-fail", "fail", "alice");
    submit_as(&s, &d, "p-cancel", "slow", "alice");
    submit_as(&s, &d, "p-running", "slow", "alice");
    wait_submission(&d, "p-done", 180, |v| state(v) == "imported");
    wait_submission(&d, "p-fail", 120, |v| state(v) == "failed");
    for id in ["p-cancel", "p-running"] {
        wait_submission(&d, id, 120, |v| {
            v["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["outcome"] == "progress")
        });
    }
    http_post(&d.base, "/api/v1/submissions/p-cancel/cancel", &json!({}));
    wait_submission(&d, "p-cancel", 60, |v| state(v) == "cancelled");

    // the overview, as the browser builds it; the token as Basic credentials, as a person
    // would type it at the browser's prompt
    let page = d.base.replacen("http://", "http://viewer:test-token@", 1);
    let dom = chromium(&format!("{page}/"), None);
    for (id, st) in [
        ("p-done", "imported"),
        ("p-fail", "failed"),
        ("p-cancel", "cancelled"),
        ("p-running", "submitted"),
    ] {
        assert!(
            dom.contains(&format!(r#"<tr data-id="{id}" data-state="{st}">"#)),
            "no {st} row for {id} in\n{dom}"
        );
    }
    // the job's Slurm state as the scheduler has it (PENDING while the node is full, RUNNING)
    assert!(
        dom.contains("follow: job RUNNING") || dom.contains("follow: job PENDING"),
        "the running job's step and state: {dom}"
    );
    assert!(dom.contains(r#"data-workflow="copy""#), "{dom}");
    assert!(
        !dom.contains("<img src=x"),
        "a user name became markup: {dom}"
    );
    assert!(dom.contains("&lt;img src=x onerror=alert(1)&gt;"), "{dom}");
    // one run: why it failed, its history
    let dom = chromium(&format!("{page}/runs/p-fail"), None);
    assert!(
        dom.contains(r#"id="error""#) && dom.contains("exit"),
        "{dom}"
    );
    assert!(dom.contains(r#"data-outcome="failed""#), "{dom}");
    let dom = chromium(&format!("{page}/runs/p-done"), None);
    assert!(
        dom.contains(r#"id="kept""#) && dom.contains(".analyzed"),
        "{dom}"
    );
    assert!(dom.contains(r#"id="durations""#), "{dom}");
    // a phone-sized screenshot as the test's artifact
    let artifacts = repo_root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let png = artifacts.join("status-page.png");
    let _ = std::fs::remove_file(&png);
    chromium(&format!("{page}/"), Some(&png));
    let bytes = std::fs::read(&png).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 5000,
        "{}",
        png.display()
    );

    // with the admin token, the page asks for it (a browser prompts) and takes it as Basic
    let curl = |args: &[&str]| {
        let o = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(curl(&[&format!("{}/", d.base)]), "401");
    assert_eq!(
        curl(&["-u", "anyone:wrong", &format!("{}/", d.base)]),
        "401"
    );
    assert_eq!(
        curl(&["-u", "anyone:test-token", &format!("{}/", d.base)]),
        "200"
    );
    assert_eq!(
        curl(&[
            "-H",
            "Authorization: Bearer test-token",
            &format!("{}/runs/p-done", d.base)
        ]),
        "200"
    );
    let o = Command::new("curl")
        .args(["-sS", "-D", "-", "-o", "/dev/null", &format!("{}/", d.base)])
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&o.stdout).to_lowercase();
    assert!(head.contains("www-authenticate: basic"), "{head}");
    // the still-running job does not outlive the test (it would hold a slot of the cluster)
    http_post(&d.base, "/api/v1/submissions/p-running/cancel", &json!({}));
    wait_submission(&d, "p-running", 60, |v| state(v) == "cancelled");
}
