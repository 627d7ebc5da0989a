//! BIOMERO's event store in tests: a fresh database, waiting for the daemon to
//! have written everything, and the rows that are ours.

// test fixtures: a failure here means the test machine is broken, and the panic says where
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::site::Site;
use crate::{Daemon, biomero_oracle, fresh_pg_database, http_get};

/// A fresh database for BIOMERO's store: (sqlx URL, BIOMERO's SQLAlchemy URL).
pub fn biomero_store() -> (String, String) {
    let url = fresh_pg_database("bst_biomero");
    let sa = url.replacen("postgres://", "postgresql+psycopg2://", 1);
    (url, sa)
}

/// Adds `[ANALYTICS]` with BIOMERO's store at `sa` to the site's `slurm-config.ini`.
pub fn track_in(s: &Site, sa: &str) {
    let ini = s.dir.path().join("slurm-config.ini");
    let mut text = std::fs::read_to_string(&ini).unwrap();
    text.push_str(&format!(
        "[ANALYTICS]\ntrack_workflows = True\nsqlalchemy_url = {sa}\n"
    ));
    std::fs::write(&ini, text).unwrap();
}

/// Waits (up to `secs`) until the daemon has written every event into BIOMERO's store.
pub fn caught_up(d: &Daemon, secs: u64) -> Value {
    let started = Instant::now();
    loop {
        let r = http_get(&d.base, "/readyz");
        let b = &r["biomero_events"];
        if b["waiting"]["events"] == 0 && b["error"].is_null() && b["store"].is_string() {
            return r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "BIOMERO's store not caught up: {r}\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The WorkflowRun id of submission `id`.
pub fn workflow_id(d: &Daemon, id: &str) -> String {
    let v = http_get(&d.base, &format!("/api/v1/submissions/{id}"));
    v["biomero"]["workflow_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no workflow id: {v}"))
        .to_owned()
}

/// The row of `table` in `views` (`oracle.py views`) whose `key` is `value`.
pub fn view_row<'a>(views: &'a Value, table: &str, key: &str, value: &Value) -> &'a Value {
    views[table]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| &r[key] == value)
        .unwrap_or_else(|| panic!("no {table} row with {key} = {value}: {views}"))
}

/// The daemon of an OMERO site, with BIOMERO's store at `sa` (BIOMERO's own `SQLALCHEMY_URL`
/// override of `[ANALYTICS] sqlalchemy_url`).
pub fn start_tracked(s: &crate::omero::OmeroSite, sa: &str) -> Daemon {
    Daemon::start(
        s.dir.path(),
        &s.settings,
        s.port,
        &["--poll-ms", "200", "--retry-ms", "300"],
        &[
            ("BIOMERO_STAGE_OMERO_PASSWORD", crate::omero::PASSWORD),
            ("SQLALCHEMY_URL", sa),
        ],
    )
}

/// The task names of a run as `oracle.py read` gives it, in the run's order.
pub fn task_names(run: &Value) -> Vec<&str> {
    run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_name"].as_str().unwrap())
        .collect()
}

/// The eventsourcing round trip finds every stored event byte for byte as it encodes it.
pub fn assert_reencodes(sa: &str) {
    let r = biomero_oracle(sa, &["reencode"]);
    assert!(r["events"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["mismatches"], json!([]), "{r}");
}

/// Every aggregate's versions run 0, 1, 2, … (BIOMERO's aggregates set `INITIAL_VERSION = 0`)
/// without a gap or a repeat.
pub fn assert_versions_contiguous(url: &str) {
    let bad = crate::psql(
        url,
        "SELECT originator_id, string_agg(originator_version::text, ',' ORDER BY id) FROM workflowtracker_events GROUP BY originator_id HAVING min(originator_version) <> 0 OR max(originator_version) + 1 <> count(DISTINCT originator_version) OR count(*) <> count(DISTINCT originator_version)",
    );
    assert_eq!(
        bad, "",
        "aggregates whose versions (in the store's order) have a gap or a repeat"
    );
}

/// The rows of `views` (`oracle.py views`) that belong to these runs: their
/// WorkflowRuns, their tasks (read by `oracle.py read`) and their jobs.
pub fn ours(views: &Value, runs: &Value, jobs: &[u64]) -> Value {
    let wf_ids: Vec<Value> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    let task_ids: Vec<Value> = runs
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].clone())
        })
        .collect();
    let job_ids: Vec<Value> = jobs.iter().map(|j| json!(j)).collect();
    let keep = |table: &str, key: &str, among: &[Value]| {
        let rows: Vec<Value> = views[table]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| among.contains(&r[key]))
            .cloned()
            .collect();
        (table.to_owned(), Value::from(rows))
    };
    Value::Object(
        [
            keep("biomero_workflow_progress_view", "workflow_id", &wf_ids),
            keep("biomero_task_execution", "task_id", &task_ids),
            keep("biomero_job_view", "slurm_job_id", &job_ids),
            keep("biomero_job_progress_view", "slurm_job_id", &job_ids),
        ]
        .into_iter()
        .collect(),
    )
}
