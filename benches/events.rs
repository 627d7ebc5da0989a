//! BIOMERO event store writes: what one run costs to record, ours against BIOMERO's own.
//!
//! Ours: the daemon's mapping (`biomero::tracking::run_events`) of an imported run's history
//! (plan, stage, upload, submit, 3 job progress polls, follow, collect, import), appended to
//! BIOMERO's store as the daemon's writer does it: once after each step, the whole run so
//! far, with prefix detection, the views and the followers' positions, under BIOMERO's table
//! lock. The peer: BIOMERO 2.8.3's own `WorkflowTracker` recording the same tasks and
//! statuses call by call, with its four followers projecting the views as it goes
//! (`tests/biomero/oracle.py record-many`, in the biomero venv of `scripts/setup-biomero-py`).
//! Both write into a fresh database on the machine's PostgreSQL; the peer's time is measured
//! inside its process (imports excluded). Prints runs/s, events/s and the ratio.
//!
//! `cargo bench -p stage-benches --bench events -- [--runs N] [--rounds K]`

#![allow(
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

#[path = "support.rs"]
mod support;
use support::fresh_db;

use std::path::PathBuf;
use std::time::Instant;

use biomero_stage::biomero::tracking::{RunFacts, run_events};
use chrono::{TimeZone, Utc};
use serde_json::{Value, json};
use stage_store::{Event, Outcome, State, Submission};
use stage_tracker::project::Enabled;
use stage_tracker::{Tracker, TrackerUrl};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Drops the database of `url` (a bench leaves none behind).
fn drop_db(url: &str) {
    let (base, name) = url.rsplit_once('/').unwrap();
    let _ = std::process::Command::new("psql")
        .args([
            format!("{base}/postgres").as_str(),
            "-q",
            "-c",
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        ])
        .status();
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn submission(n: usize) -> Submission {
    let t = Utc.timestamp_opt(1_780_000_000, 0).single().unwrap();
    Submission {
        id: format!("bench-{n}"),
        workflow: "cellpose".into(),
        request: json!({"user": {"name": "alice", "group": "Lab A", "id": 52, "group_id": 3},
            "inputs": {"omero": [{"type": "Image", "id": 1}]}, "parameters": {"diameter": 30}}),
        state: State::Imported,
        done: true,
        waiting_for: None,
        error: None,
        attempts: 0,
        next_attempt_at: t,
        cancel_requested: false,
        data: json!({}),
        created_at: t,
        updated_at: t,
    }
}

fn history() -> Vec<Event> {
    let ev = |seq: i32, step: &str, outcome, state, detail: Value| Event {
        seq,
        step: step.into(),
        outcome,
        state,
        detail,
        at: Utc
            .timestamp_opt(1_780_000_000 + i64::from(seq), 0)
            .single()
            .unwrap(),
    };
    let progress = |seq, p| {
        ev(
            seq,
            "follow",
            Outcome::Progress,
            State::Submitted,
            json!({"job_id": 17, "slurm_state": "RUNNING", "progress": p}),
        )
    };
    vec![
        ev(1, "intake", Outcome::Accepted, State::Received, json!({})),
        ev(2, "plan", Outcome::Succeeded, State::Planned, json!({})),
        ev(3, "stage", Outcome::Succeeded, State::Staged, json!({})),
        ev(4, "upload", Outcome::Succeeded, State::Uploaded, json!({})),
        ev(
            5,
            "submit",
            Outcome::Succeeded,
            State::Submitted,
            json!({"job_id": 17}),
        ),
        progress(6, 20),
        progress(7, 60),
        progress(8, 90),
        ev(9, "follow", Outcome::Succeeded, State::Finished, json!({})),
        ev(
            10,
            "collect",
            Outcome::Succeeded,
            State::Collected,
            json!({}),
        ),
        ev(11, "import", Outcome::Succeeded, State::Imported, json!({})),
    ]
}

/// Ours: `runs` runs, each appended after every step. `(seconds, events written)`.
async fn ours(url: &str, runs: usize, queue: &str) -> (f64, usize) {
    let tracker = Tracker::new(TrackerUrl::parse(url).unwrap(), Enabled::ALL).unwrap();
    tracker.ensure_tables().await.unwrap();
    let h = history();
    let subs: Vec<Submission> = (0..runs).map(submission).collect();
    let started = Instant::now();
    let mut written = 0;
    for s in &subs {
        for n in 1..=h.len() {
            let facts = RunFacts {
                queue,
                submission: s,
                history: &h[..n],
                workflow_version: "v1.4.0",
                mode: Some(stage_config::InputMode::Tiff),
                stage_version: "bench",
            };
            written += tracker.append(&run_events(&facts)).await.unwrap().inserted;
        }
    }
    (started.elapsed().as_secs_f64(), written)
}

/// BIOMERO's own recorder: `(seconds inside the process, events written)`.
fn peer(url: &str, runs: usize) -> Option<(f64, usize)> {
    let py = std::env::var_os("BIOMERO_STAGE_BIOMERO_PYTHON").map_or_else(
        || repo().join("target/biomero-pyenv/bin/python"),
        PathBuf::from,
    );
    if !py.exists() {
        eprintln!(
            "{} is missing: run scripts/setup-biomero-py for the peer",
            py.display()
        );
        return None;
    }
    let sa = url.replacen("postgres://", "postgresql+psycopg2://", 1);
    let out = std::process::Command::new(py)
        .arg(repo().join("tests/biomero/oracle.py"))
        .arg(&sa)
        .args(["record-many", &runs.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    Some((
        v["seconds"].as_f64().unwrap(),
        v["events"].as_u64().unwrap() as usize,
    ))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let runs = arg("--runs", 50);
    let rounds = arg("--rounds", 3);
    let (mut ours_s, mut peer_s) = (Vec::new(), Vec::new());
    let (mut ours_events, mut peer_events) = (0, 0);
    // one warm-up of each, then the measured rounds, alternating
    for round in 0..=rounds {
        let url = fresh_db(&format!("ev_ours_{round}"));
        let (s, n) = ours(&url, runs, &format!("bench-{round}")).await;
        drop_db(&url);
        let url = fresh_db(&format!("ev_peer_{round}"));
        let measured = peer(&url, runs);
        drop_db(&url);
        let Some((ps, pn)) = measured else {
            return;
        };
        if round > 0 {
            ours_s.push(s);
            peer_s.push(ps);
            (ours_events, peer_events) = (n, pn);
        }
    }
    let (o, p) = (median(&mut ours_s), median(&mut peer_s));
    println!(
        "BIOMERO event store: {runs} imported runs recorded, {rounds} rounds after a warm-up, medians"
    );
    println!("| contender | events per run | median s | runs/s | events/s | peer / ours |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| biomero-stage (append after each of 11 steps, views in the same transaction) | {} | {o:.3} | {:.0} | {:.0} | 1.00 |",
        ours_events / runs,
        runs as f64 / o,
        ours_events as f64 / o
    );
    println!(
        "| BIOMERO 2.8.3 WorkflowTracker + its 4 followers (call by call) | {} | {p:.3} | {:.0} | {:.0} | {:.2}× |",
        peer_events / runs,
        runs as f64 / p,
        peer_events as f64 / p,
        p / o
    );
}
