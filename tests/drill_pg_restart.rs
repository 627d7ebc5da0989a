//! Drill: the machine's PostgreSQL — holding the queue, BIOMERO.importer's
//! `imports` table and BIOMERO's event store — is restarted three times while
//! plate jobs run on the local Slurm; every submission still ends imported,
//! each step succeeded once, one sbatch and one importer order each, and every
//! event of every run lands in BIOMERO's store once, in order, with the views
//! BIOMERO's own rebuild gives.
//!
//! Its own test binary: cargo runs test binaries one after another, so the
//! restarts never cut another test's connections. Needs root (`pg_ctlcluster`),
//! as `scripts/test` and CI run.

#![allow(clippy::unwrap_used)]

use stage_tests::drills::Drill;
use std::process::Command;
use std::time::{Duration, Instant};

use stage_tests::biomero_store::{
    assert_reencodes, assert_versions_contiguous, biomero_store, caught_up, ours, track_in,
    workflow_id,
};
use stage_tests::site::{
    assert_each_step_once, assert_one_job_each, cluster_now, site, start, state, submit_plate,
    use_queue,
};
use stage_tests::{TestImporter, biomero_oracle, fresh_pg_database, http_get, importer_db, psql};

/// The local PostgreSQL cluster serving 127.0.0.1:5432: (version, name).
fn pg_cluster() -> (String, String) {
    let out = Command::new("pg_lsclusters")
        .arg("-h")
        .output()
        .unwrap_or_else(|e| {
            panic!("pg_lsclusters (postgresql-common) is needed for this drill: {e}")
        });
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some("5432"))
        .unwrap_or_else(|| panic!("no PostgreSQL cluster on port 5432 in `pg_lsclusters`: {text}"));
    let mut f = line.split_whitespace();
    (f.next().unwrap().to_owned(), f.next().unwrap().to_owned())
}

fn restart_postgres(version: &str, name: &str) -> Duration {
    let started = Instant::now();
    let out = Command::new("pg_ctlcluster")
        .args([version, name, "restart", "-m", "fast"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_ctlcluster {version} {name} restart (run as root): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

#[test]
fn postgresql_restarts_while_plate_jobs_run_and_nothing_is_lost_or_done_twice() {
    const N: usize = 8;
    let (version, name) = pg_cluster();
    let (importer_url, sa) = importer_db();
    let queue = fresh_pg_database("bst_drill_pg");
    let s = site(
        "pg-restart",
        "",
        &format!("importer_database_url = \"{importer_url}\"\nimport_poll_secs = 1\n"),
    );
    use_queue(&s, &queue);
    let (store_url, store_sa) = biomero_store();
    track_in(&s, &store_sa);
    let since = cluster_now(&s);
    let _importer = TestImporter::start(&sa, &[]);
    let d = start(&s, &[]);
    let ids: Vec<String> = (0..N).map(|i| format!("pg-{i}")).collect();
    for id in &ids {
        submit_plate(&s, &d, id, 7);
    }
    let mut downtime = Vec::new();
    for pause in [2, 5, 7] {
        std::thread::sleep(Duration::from_secs(pause));
        downtime.push(restart_postgres(&version, &name));
    }
    let deadline = Instant::now() + Duration::from_mins(5);
    let mut drill = Drill::new("PostgreSQL restarted 3x under 8 plate jobs (per job)");
    for id in &ids {
        let v = loop {
            let v = http_get(&d.base, &format!("/api/v1/submissions/{id}"));
            if matches!(state(&v), "imported" | "failed" | "cancelled") {
                break v;
            }
            assert!(
                Instant::now() < deadline,
                "{id} did not finish: {v}\n{}",
                d.log_text()
            );
            std::thread::sleep(Duration::from_millis(300));
        };
        assert_eq!(state(&v), "imported", "{id}: {v}\n{}", d.log_text());
        assert_each_step_once(id, &v);
        drill.trial(true);
    }
    assert_one_job_each(&s, &since, &ids);
    assert_eq!(
        psql(&importer_url, "SELECT count(DISTINCT uuid) FROM imports"),
        N.to_string()
    );
    assert_eq!(
        psql(
            &importer_url,
            "SELECT count(*) FROM imports WHERE stage = 'Import Pending'"
        ),
        N.to_string()
    );
    // BIOMERO's event store lived through the same restarts
    let mut drill = Drill::new("PostgreSQL restarted 3x: BIOMERO's event store (per run)");
    caught_up(&d, 120);
    assert_versions_contiguous(&store_url);
    assert_reencodes(&store_sa);
    let wf: Vec<String> = ids.iter().map(|id| workflow_id(&d, id)).collect();
    let mut args = vec!["read"];
    args.extend(wf.iter().map(String::as_str));
    let runs = biomero_oracle(&store_sa, &args);
    let views = biomero_oracle(&store_sa, &["views"]);
    for (n, id) in ids.iter().enumerate() {
        let progress = views["biomero_workflow_progress_view"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["workflow_id"] == runs[n]["id"])
            .unwrap_or_else(|| panic!("{id}: no progress row"));
        let ok = progress["status"] == "DONE" && runs[n]["tasks"].as_array().unwrap().len() == 6;
        assert!(ok, "{id}: {progress} {}", runs[n]);
        drill.trial(ok);
    }
    let jobs: Vec<u64> = ids
        .iter()
        .map(|id| {
            http_get(&d.base, &format!("/api/v1/submissions/{id}"))["submission"]["data"]["submit"]
                ["job_id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        ours(&biomero_oracle(&store_sa, &["rebuild"]), &runs, &jobs),
        ours(&views, &runs, &jobs)
    );
    eprintln!("{N} plate jobs imported across 3 PostgreSQL restarts ({downtime:?} each)");
}
