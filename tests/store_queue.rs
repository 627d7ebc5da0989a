//! The queue on both backends — a SQLite file and the machine's PostgreSQL
//! (a fresh database per test): idempotent intake, claims with leases and
//! fencing, the event log, cancellation, reaping, and concurrency (several
//! daemons on one database, every step executed exactly once).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use stage_store::{
    ListFilter, NewSubmission, Outcome, Renewal, State, Store, StoreError, Transition,
};
use stage_tests::fresh_pg_database;

async fn stores() -> Vec<(&'static str, Store, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::connect(&format!(
        "sqlite://{}",
        dir.path().join("q.sqlite").display()
    ))
    .await
    .unwrap();
    let pg = Store::connect(&fresh_pg_database("stage_queue"))
        .await
        .unwrap();
    vec![("sqlite", sqlite, Some(dir)), ("postgres", pg, None)]
}

fn new(id: &str) -> NewSubmission {
    NewSubmission {
        id: id.into(),
        workflow: "cellpose".into(),
        request: json!({"version": 1, "workflow": "cellpose"}),
        notices: Vec::new(),
    }
}

#[tokio::test]
async fn intake_is_idempotent_and_starts_the_event_log() {
    for (name, store, _d) in stores().await {
        let (s, created) = store.insert(&new("a")).await.unwrap();
        assert!(created, "{name}");
        assert_eq!(s.state, State::Received);
        let (again, created) = store
            .insert(&NewSubmission {
                workflow: "other".into(),
                ..new("a")
            })
            .await
            .unwrap();
        assert!(
            !created,
            "{name}: the second submission with the same id is the first"
        );
        assert_eq!(again.workflow, "cellpose");
        let ev = store.events("a").await.unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!(
            (ev[0].step.as_str(), ev[0].outcome),
            ("intake", Outcome::Accepted)
        );
        assert_eq!(store.list(&ListFilter::default()).await.unwrap().len(), 1);
        // notices are part of the intake event, written with the submission itself
        store
            .insert(&NewSubmission {
                notices: vec!["no OMERO table was made".into()],
                ..new("b")
            })
            .await
            .unwrap();
        let ev = store.events("b").await.unwrap();
        assert_eq!(ev.len(), 1, "{name}");
        assert_eq!(
            ev[0].detail,
            json!({"workflow": "cellpose", "notices": ["no OMERO table was made"]}),
            "{name}"
        );
        assert!(
            store.events("a").await.unwrap()[0]
                .detail
                .get("notices")
                .is_none()
        );
    }
}

#[tokio::test]
async fn steps_advance_the_projection_and_keep_their_results() {
    for (name, store, _d) in stores().await {
        store.insert(&new("s1")).await.unwrap();
        let c = store
            .claim("w1", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        assert!(
            store
                .claim("w2", Duration::from_secs(30))
                .await
                .unwrap()
                .is_none(),
            "{name}: held"
        );
        let s = store
            .advance(
                &c,
                &Transition::succeeded("plan", State::Planned, json!({"files": 3})),
            )
            .await
            .unwrap();
        assert_eq!(s.state, State::Planned);
        let at = chrono::Utc::now() + chrono::Duration::milliseconds(300);
        let s = store
            .advance(&c, &Transition::retrying("stage", "disk busy", at))
            .await
            .unwrap();
        assert_eq!((s.attempts, s.error.as_deref()), (1, Some("disk busy")));
        store.release(&c).await.unwrap();
        assert!(
            store
                .claim("w2", Duration::from_secs(30))
                .await
                .unwrap()
                .is_none(),
            "{name}: backoff"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        let c = store
            .claim("w2", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        let s = store
            .advance(
                &c,
                &Transition::succeeded("stage", State::Staged, json!({"bytes": 10})),
            )
            .await
            .unwrap();
        assert_eq!((s.attempts, s.error), (0, None));
        assert_eq!(
            s.data,
            json!({"plan": {"files": 3}, "stage": {"bytes": 10}})
        );
        let s = store
            .advance(
                &c,
                &Transition::failed("upload", "quota exceeded on the cluster", json!({})),
            )
            .await
            .unwrap();
        assert!(s.done && s.state == State::Failed);
        store.release(&c).await.unwrap();
        assert!(
            store
                .claim("w3", Duration::from_secs(30))
                .await
                .unwrap()
                .is_none(),
            "{name}: done"
        );
        let outcomes: Vec<(String, Outcome, State)> = store
            .events("s1")
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.step, e.outcome, e.state))
            .collect();
        assert_eq!(
            outcomes,
            vec![
                ("intake".into(), Outcome::Accepted, State::Received),
                ("plan".into(), Outcome::Succeeded, State::Planned),
                ("stage".into(), Outcome::Retrying, State::Planned),
                ("stage".into(), Outcome::Succeeded, State::Staged),
                ("upload".into(), Outcome::Failed, State::Failed),
            ],
            "{name}"
        );
        // the list, by state and in all
        store.insert(&new("s2")).await.unwrap();
        let ids = |list: Vec<stage_store::Submission>| -> Vec<String> {
            list.into_iter().map(|s| s.id).collect()
        };
        let by_state = |state| ListFilter {
            state: Some(state),
            ..ListFilter::default()
        };
        assert_eq!(
            ids(store.list(&by_state(State::Failed)).await.unwrap()),
            ["s1"],
            "{name}"
        );
        assert_eq!(
            ids(store.list(&by_state(State::Received)).await.unwrap()),
            ["s2"],
            "{name}"
        );
        assert!(
            store
                .list(&by_state(State::Imported))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            ids(store.list(&ListFilter::default()).await.unwrap()).len(),
            2,
            "{name}"
        );
        // a run's submissions are the ids after `<run>-` (the range of the primary key); the API keeps `<run>-<digits>`
        for id in ["r7-1", "r7-2", "r7-x-1", "r70-1", "r7.1"] {
            store.insert(&new(id)).await.unwrap();
        }
        let mut of_run = ids(store
            .list(&ListFilter {
                run: Some("r7".into()),
                limit: 100,
                ..ListFilter::default()
            })
            .await
            .unwrap());
        of_run.sort();
        assert_eq!(of_run, ["r7-1", "r7-2", "r7-x-1"], "{name}");
    }
}

/// A long job polled every few seconds leaves one progress event per change, not one per
/// poll: a progress that says what the last event said moves only the next look.
#[tokio::test]
async fn progress_that_has_not_changed_is_not_written_again() {
    for (name, store, _d) in stores().await {
        store.insert(&new("p")).await.unwrap();
        let c = store
            .claim("w1", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        let soon = || chrono::Utc::now() + chrono::Duration::seconds(30);
        let poll = |state: &str, pct: u32| {
            Transition::progress(
                "follow",
                json!({"slurm_state": state, "progress": pct}),
                soon(),
            )
        };
        for (state, pct) in [
            ("PENDING", 0),
            ("PENDING", 0),
            ("RUNNING", 0),
            ("RUNNING", 40),
            ("RUNNING", 40),
            ("RUNNING", 40),
            ("RUNNING", 80),
        ] {
            let s = store.advance(&c, &poll(state, pct)).await.unwrap();
            assert!(
                s.next_attempt_at > chrono::Utc::now(),
                "{name}: next look moved"
            );
        }
        // the same progress after another step's event is news again
        store
            .advance(
                &c,
                &Transition::progress("import", json!({"orders": 1}), soon()),
            )
            .await
            .unwrap();
        store.advance(&c, &poll("RUNNING", 80)).await.unwrap();
        // a transfer's progress and a note, written beside the step by whoever holds it
        store
            .progress("p", "upload", &json!({"progress": 5}))
            .await
            .unwrap();
        store
            .note("p", "stage", &json!({"exporter": ["line"]}))
            .await
            .unwrap();
        let last: Vec<(String, Outcome)> = store.events("p").await.unwrap()[..]
            .iter()
            .rev()
            .take(2)
            .map(|e| (e.step.clone(), e.outcome))
            .collect();
        assert_eq!(
            last,
            [
                ("stage".to_owned(), Outcome::Noted),
                ("upload".to_owned(), Outcome::Progress)
            ],
            "{name}"
        );
        let seen: Vec<(String, serde_json::Value)> = store
            .events("p")
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.outcome == Outcome::Progress)
            .map(|e| (e.step, e.detail))
            .collect();
        let want = |s: &str, p: u32| {
            (
                "follow".to_owned(),
                json!({"slurm_state": s, "progress": p}),
            )
        };
        assert_eq!(
            seen,
            [
                want("PENDING", 0),
                want("RUNNING", 0),
                want("RUNNING", 40),
                want("RUNNING", 80),
                ("import".to_owned(), json!({"orders": 1})),
                want("RUNNING", 80),
                ("upload".to_owned(), json!({"progress": 5})),
            ],
            "{name}"
        );
    }
}

#[tokio::test]
async fn an_expired_lease_is_reaped_and_its_holder_is_fenced_off() {
    for (name, store, _d) in stores().await {
        store.insert(&new("f1")).await.unwrap();
        let slow = store
            .claim("slow", Duration::from_millis(300))
            .await
            .unwrap()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(store.reap().await.unwrap(), 1, "{name}");
        let fast = store
            .claim("fast", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        let e = store
            .advance(
                &slow,
                &Transition::succeeded("plan", State::Planned, json!({})),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::LeaseLost(_)), "{name}: {e}");
        assert_eq!(
            store.renew(&slow, Duration::from_secs(1)).await.unwrap(),
            Renewal::Lost
        );
        store
            .advance(
                &fast,
                &Transition::succeeded("plan", State::Planned, json!({})),
            )
            .await
            .unwrap();
        let ev = store.events("f1").await.unwrap();
        assert!(
            ev.iter().any(|e| e.outcome == Outcome::LeaseExpired),
            "{name}"
        );
        assert_eq!(
            ev.iter().filter(|e| e.step == "plan").count(),
            1,
            "{name}: the step is recorded once"
        );
    }
}

#[tokio::test]
async fn cancellation_reaches_the_holder_and_finished_submissions_refuse_it() {
    for (name, store, _d) in stores().await {
        store.insert(&new("c1")).await.unwrap();
        let c = store
            .claim("w", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            store.renew(&c, Duration::from_secs(30)).await.unwrap(),
            Renewal::Held
        );
        store.request_cancel("c1").await.unwrap();
        assert!(
            store
                .claim("w2", Duration::from_secs(30))
                .await
                .unwrap()
                .is_none(),
            "{name}: the request leaves the submission with its holder"
        );
        assert_eq!(
            store.queue_depth().await.unwrap(),
            0,
            "{name}: held is not queued"
        );
        assert_eq!(
            store.renew(&c, Duration::from_secs(30)).await.unwrap(),
            Renewal::CancelRequested,
            "{name}: the holder learns of it"
        );
        let s = store
            .advance(&c, &Transition::cancelled("stage"))
            .await
            .unwrap();
        assert!(s.done && s.state == State::Cancelled);
        let e = store.request_cancel("c1").await.unwrap_err();
        assert!(e.to_string().contains("already cancelled"), "{name}: {e}");
        assert!(matches!(
            store.request_cancel("nope").await,
            Err(StoreError::NotFound(_))
        ));
    }
}

#[tokio::test]
async fn waiting_submissions_sleep_until_resumed() {
    for (name, store, _d) in stores().await {
        store.insert(&new("w1")).await.unwrap();
        let c = store
            .claim("w", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        let s = store
            .advance(
                &c,
                &Transition::waiting("plan", "the omero source is not configured"),
            )
            .await
            .unwrap();
        assert_eq!(
            s.waiting_for.as_deref(),
            Some("the omero source is not configured")
        );
        store.release(&c).await.unwrap();
        assert!(
            store
                .claim("w", Duration::from_secs(30))
                .await
                .unwrap()
                .is_none(),
            "{name}"
        );
        assert_eq!(store.resume_waiting().await.unwrap(), 1);
        assert!(
            store
                .claim("w", Duration::from_secs(30))
                .await
                .unwrap()
                .is_some(),
            "{name}"
        );
    }
}

/// Several daemons (separate pools) work one database: every (submission, step) runs exactly once.
async fn run_daemons(
    url: &str,
    daemons: usize,
    submissions: usize,
) -> HashMap<(String, String), u32> {
    let setup = Store::connect(url).await.unwrap();
    for i in 0..submissions {
        setup.insert(&new(&format!("s{i:04}"))).await.unwrap();
    }
    let executed: Arc<Mutex<HashMap<(String, String), u32>>> = Arc::default();
    let steps = [
        ("plan", State::Planned),
        ("stage", State::Staged),
        ("upload", State::Imported),
    ];
    let mut tasks = Vec::new();
    for d in 0..daemons {
        let store = Store::connect(url).await.unwrap();
        let executed = Arc::clone(&executed);
        tasks.push(tokio::spawn(async move {
            let owner = format!("daemon-{d}");
            let mut idle = 0;
            while idle < 20 {
                let Some(c) = store.claim(&owner, Duration::from_secs(30)).await.unwrap() else {
                    idle += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                idle = 0;
                let step = steps
                    .iter()
                    .find(|(_, st)| *st > c.submission.state)
                    .copied();
                if let Some((name, next)) = step {
                    *executed
                        .lock()
                        .unwrap()
                        .entry((c.submission.id.clone(), name.to_owned()))
                        .or_default() += 1;
                    store
                        .advance(&c, &Transition::succeeded(name, next, json!({"by": owner})))
                        .await
                        .unwrap();
                }
                store.release(&c).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let counts = setup.counts_by_state().await.unwrap();
    assert_eq!(
        counts,
        vec![(State::Imported, i64::try_from(submissions).unwrap())]
    );
    Arc::try_unwrap(executed).unwrap().into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_daemons_on_one_postgres_run_every_step_of_500_submissions_exactly_once() {
    let url = fresh_pg_database("stage_conc");
    let started = Instant::now();
    let executed = run_daemons(&url, 4, 500).await;
    assert_eq!(executed.len(), 500 * 3);
    assert!(executed.values().all(|n| *n == 1), "some step ran twice");
    eprintln!("postgres: 4 daemons, 1500 steps in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_workers_on_one_sqlite_file_run_every_step_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("q.sqlite").display());
    let executed = run_daemons(&url, 4, 200).await;
    assert_eq!(executed.len(), 200 * 3);
    assert!(executed.values().all(|n| *n == 1), "some step ran twice");
}

#[tokio::test]
async fn a_row_inserted_by_another_program_wakes_the_daemon_through_notify() {
    let url = fresh_pg_database("stage_notify");
    let store = Store::connect(&url).await.unwrap();
    let mut listener = store.listener().await.unwrap();
    assert!(listener.is_some());
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            store
                .wait_for_work(&mut listener, Duration::from_secs(30))
                .await;
            t.elapsed()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    // an OMERO script or the web plugin inserts a row; the trigger notifies
    sqlx::query("INSERT INTO biomero_stage_submissions (id, workflow, request) VALUES ('ext-1', 'cellpose', '{\"version\": 1}'::jsonb)")
        .execute(&pool)
        .await
        .unwrap();
    let woke_after = waiter.await.unwrap();
    assert!(
        woke_after < Duration::from_secs(5),
        "woke after {woke_after:?}"
    );
    let c = store
        .claim("w", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.submission.id, "ext-1");
    assert_eq!(c.submission.state, State::Received);
}

#[tokio::test]
async fn processes_opening_a_new_sqlite_queue_at_once_all_get_it() {
    // the daemon starting while `submit` runs: both create the schema of a new file
    for round in 0..5 {
        let d = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/q-{round}.sqlite?mode=rwc", d.path().display());
        let opened = futures_join(&url, 6).await;
        for r in opened {
            let store = r.unwrap_or_else(|e| panic!("round {round}: {e}"));
            store.ping().await.unwrap();
        }
    }
}

async fn futures_join(url: &str, n: usize) -> Vec<Result<Store, StoreError>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let url = url.to_owned();
            tokio::spawn(async move { Store::connect(&url).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn the_log_says_which_histories_wait_to_be_written_elsewhere() {
    for (name, store, _d) in stores().await {
        store.insert(&new("m1")).await.unwrap();
        store.insert(&new("m2")).await.unwrap();
        let pending = store.mirror_pending(0, 10).await.unwrap();
        let ids: Vec<&str> = pending.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["m1", "m2"], "{name}: the longest waiting first");
        assert_eq!(pending[0].seq, 1, "{name}");
        let lag = store.mirror_lag().await.unwrap();
        assert_eq!((lag.submissions, lag.events), (2, 2), "{name}");
        assert!(lag.oldest.is_some(), "{name}");
        store.mirror_done("m1", 1).await.unwrap();
        // a step later, m1 waits again from its new event only
        store.note("m1", "notify", &json!({})).await.unwrap();
        let pending = store.mirror_pending(0, 10).await.unwrap();
        let m1 = pending.iter().find(|p| p.id == "m1").unwrap();
        assert_eq!(m1.seq, 2, "{name}");
        assert_eq!(
            store.mirror_lag().await.unwrap().events,
            2,
            "{name}: m1's second and m2's first"
        );
        // recording an older position never moves back
        store.mirror_done("m1", 2).await.unwrap();
        store.mirror_done("m1", 1).await.unwrap();
        store.mirror_done("m2", 1).await.unwrap();
        assert!(
            store.mirror_pending(0, 10).await.unwrap().is_empty(),
            "{name}"
        );
        let lag = store.mirror_lag().await.unwrap();
        assert_eq!(
            (lag.submissions, lag.events, lag.oldest),
            (0, 0, None),
            "{name}"
        );
        // a scan that starts past every event finds nothing, whatever waits
        store.note("m2", "notify", &json!({})).await.unwrap();
        let last = store.last_event_id().await.unwrap();
        assert!(
            store.mirror_pending(last, 10).await.unwrap().is_empty(),
            "{name}"
        );
        assert_eq!(
            store.mirror_pending(0, 10).await.unwrap().len(),
            1,
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_once_per_run_claim_goes_to_exactly_one_of_many_concurrent_callers() {
    for (name, store, _d) in stores().await {
        for round in 0..5 {
            let key = format!("mail:run-{round}");
            let tasks: Vec<_> = (0..8)
                .map(|i| {
                    let (store, key) = (store.clone(), key.clone());
                    tokio::spawn(
                        async move { store.claim_once(&key, &format!("caller {i}")).await },
                    )
                })
                .collect();
            let mut won = 0;
            for t in tasks {
                if t.await.unwrap().unwrap() {
                    won += 1;
                }
            }
            assert_eq!(
                won, 1,
                "{name}: round {round}: {won} callers claimed the same run"
            );
            assert!(
                !store.claim_once(&key, "late").await.unwrap(),
                "{name}: a late caller claims it again"
            );
        }
        // another key is another claim, and the queue's own identity is untouched
        let id = store.identity().await.unwrap();
        assert!(store.claim_once("mail:other", "x").await.unwrap(), "{name}");
        assert_eq!(store.identity().await.unwrap(), id, "{name}");
    }
}

#[tokio::test]
async fn pages_follow_one_another_without_gaps_or_repeats_while_submissions_arrive() {
    for (name, store, _d) in stores().await {
        for i in 0..250 {
            store.insert(&new(&format!("p{i:03}"))).await.unwrap();
        }
        let mut seen: Vec<String> = Vec::new();
        let mut before: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = store
                .list(&ListFilter {
                    limit: 100,
                    before: before.clone(),
                    ..ListFilter::default()
                })
                .await
                .unwrap();
            pages += 1;
            if pages == 2 {
                // newer submissions arrive between pages: they do not shift the next page
                for i in 0..5 {
                    store.insert(&new(&format!("late{i}"))).await.unwrap();
                }
            }
            seen.extend(page.iter().map(|s| s.id.clone()));
            if page.len() < 100 {
                break;
            }
            before = page.last().map(|s| s.id.clone());
        }
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            seen.len(),
            "{name}: a submission was listed twice"
        );
        assert_eq!(
            seen.len(),
            250,
            "{name}: {pages} pages, not every submission"
        );
        assert!(seen.iter().all(|id| id.starts_with('p')), "{name}");
        // an unknown cursor lists nothing rather than everything
        let none = store
            .list(&ListFilter {
                limit: 100,
                before: Some("no-such".into()),
                ..ListFilter::default()
            })
            .await
            .unwrap();
        assert!(none.is_empty(), "{name}");
    }
}

#[tokio::test]
async fn a_finished_history_is_cut_to_its_end_once_old_enough_and_written_elsewhere() {
    for (name, store, _d) in stores().await {
        // one finished (progress, a cancellation, a note after the end), one still open
        store.insert(&new("h1")).await.unwrap();
        let c = store
            .claim("w", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        for pct in [10, 60] {
            store
                .progress("h1", "plan", &json!({ "progress": pct }))
                .await
                .unwrap();
        }
        store.request_cancel("h1").await.unwrap();
        store
            .advance(&c, &Transition::cancelled("plan"))
            .await
            .unwrap();
        store
            .note("h1", "notify", &json!({"mail": "not sent"}))
            .await
            .unwrap();
        store.insert(&new("h2")).await.unwrap();
        let whole = store.events("h1").await.unwrap();
        let outcomes: Vec<Outcome> = whole.iter().map(|e| e.outcome).collect();
        assert_eq!(
            outcomes,
            [
                Outcome::Accepted,
                Outcome::Progress,
                Outcome::Progress,
                Outcome::CancelRequested,
                Outcome::Cancelled,
                Outcome::Noted
            ],
            "{name}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        // not old enough yet
        let none = stage_store::Cut::default();
        assert_eq!(
            store
                .cut_histories(Duration::from_hours(1), false, 10)
                .await
                .unwrap(),
            none,
            "{name}"
        );
        // old enough, but not yet written to BIOMERO's event store
        assert_eq!(
            store.cut_histories(Duration::ZERO, true, 10).await.unwrap(),
            none,
            "{name}"
        );
        store.mirror_done("h1", whole[4].seq).await.unwrap();
        assert_eq!(
            store.cut_histories(Duration::ZERO, true, 10).await.unwrap(),
            none,
            "{name}: the note after the end is not written there yet"
        );
        store.mirror_done("h1", whole[5].seq).await.unwrap();
        let cut = store.cut_histories(Duration::ZERO, true, 10).await.unwrap();
        assert_eq!((cut.submissions, cut.events), (1, 4), "{name}");
        assert_eq!(store.events("h1").await.unwrap(), whole[4..], "{name}");
        assert_eq!(
            store
                .cut_histories(Duration::ZERO, false, 10)
                .await
                .unwrap(),
            none,
            "{name}: nothing more to cut"
        );
        // the open one keeps everything; the finished one is still itself
        assert_eq!(store.events("h2").await.unwrap().len(), 1, "{name}");
        let s = store.get("h1").await.unwrap().unwrap();
        assert_eq!((s.state, s.done), (State::Cancelled, true), "{name}");
        let (_, created) = store.insert(&new("h1")).await.unwrap();
        assert!(!created, "{name}: its id stays taken");
        assert!(
            store
                .mirror_pending(0, 10)
                .await
                .unwrap()
                .iter()
                .all(|p| p.id != "h1"),
            "{name}: nothing of it waits to be written again"
        );
    }
}
