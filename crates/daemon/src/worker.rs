//! A pipeline worker: claims a submission, runs its steps under a lease, records each.
//!
//! While a step runs, a heartbeat renews the lease every third of its
//! duration and watches for cancellation; if the lease is lost (another
//! daemon took over after we stalled) the step is abandoned and nothing is
//! recorded — the store's fencing would refuse it anyway. Transient failures
//! retry with capped exponential backoff; after `max_attempts` the submission
//! fails with the last error. Shutdown stops claiming at once and lets the
//! running step finish, or abandons it when the grace period ends (its lease
//! is released so another worker can pick it up; steps are idempotent).
//!
//! The mapping of a step's outcome to the recorded transition is one pure
//! function, [`decide`]; the loop around it is [`process`].

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use stage_store::{Claim, Renewal, State, StoreError, Submission, Transition};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::metrics::{FailureLabels, StepLabel, StepLabels};
use crate::pipeline::{self, FailureKind, Step, StepContext, StepOutcome};
use crate::runtime::{Runtime, Timings};

/// Runs one worker until `shutdown` is cancelled.
pub async fn run(rt: Runtime, name: String, shutdown: CancellationToken) {
    rt.workers_running.fetch_add(1, Ordering::Relaxed);
    rt.metrics.workers.inc();
    let mut listener = match rt.store.listener().await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(worker = %name, error = %e, "no queue notifications; polling");
            None
        }
    };
    let mut db_backoff = rt.timings.retry_base;
    while !shutdown.is_cancelled() {
        match rt.store.claim(&name, rt.timings.lease).await {
            Ok(Some(claim)) => {
                db_backoff = rt.timings.retry_base;
                let span = tracing::info_span!("submission", id = %claim.submission.id, workflow = %claim.submission.workflow);
                process(&rt, claim, &shutdown).instrument(span).await;
            }
            Ok(None) => {
                tokio::select! {
                    () = rt.store.wait_for_work(&mut listener, rt.timings.poll) => {}
                    () = shutdown.cancelled() => {}
                }
            }
            Err(e) => {
                tracing::warn!(worker = %name, error = %e, retry_in = ?db_backoff, "cannot claim from the queue");
                tokio::select! {
                    () = tokio::time::sleep(db_backoff) => {}
                    () = shutdown.cancelled() => {}
                }
                db_backoff = (db_backoff * 2).min(rt.timings.retry_max);
            }
        }
    }
    rt.metrics.workers.dec();
    rt.workers_running.fetch_sub(1, Ordering::Relaxed);
}

/// The retry delay after `attempts` failures.
pub fn backoff(timings: &Timings, attempts: i32) -> Duration {
    let factor = 2u32.saturating_pow(u32::try_from(attempts.clamp(0, 20)).unwrap_or(20));
    timings
        .retry_base
        .saturating_mul(factor)
        .min(timings.retry_max)
}

/// What a claimed submission needs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing: it is done, or in a state no step runs from.
    Nothing,
    /// Its cancellation was requested: stop what runs for it and record it cancelled.
    Cancel,
    /// Run `step`, which leads to the state.
    Run(Step, State),
}

/// What a claimed submission needs next.
pub fn next(s: &Submission) -> Next {
    if s.done {
        Next::Nothing
    } else if s.cancel_requested {
        Next::Cancel
    } else {
        Step::after(s.state).map_or(Next::Nothing, |(step, to)| Next::Run(step, to))
    }
}

/// What the heartbeat saw of the lease while a step ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseSeen {
    /// Held throughout.
    Held,
    /// Held, and a cancellation was requested (the step was told to stop).
    CancelRequested,
    /// Lost to another holder (the step was told to stop; record nothing).
    Lost,
}

/// A counter the worker bumps for a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Nothing beyond the step's duration.
    Nothing,
    /// A retry of the step.
    Retry,
    /// A failure of the submission, by kind.
    Failure(FailureKind),
}

/// What the worker records for a step's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The transition to record.
    pub transition: Transition,
    /// The counter to bump.
    pub counted: Counted,
}

impl Decision {
    /// The pipeline goes on with the next step in this claim.
    pub fn continues(&self) -> bool {
        self.transition.outcome == stage_store::Outcome::Succeeded && !self.transition.done
    }
}

/// The transition a step's `outcome` leads to, after `attempts` earlier failed
/// attempts of it: the whole state machine of one step, without I/O.
pub fn decide(
    step: Step,
    next_state: State,
    outcome: StepOutcome,
    attempts: i32,
    timings: &Timings,
) -> Decision {
    let name = step.name();
    let (transition, counted) = match outcome {
        StepOutcome::Done { result, last } => {
            let mut t = Transition::succeeded(name, next_state, result);
            t.done = last || next_state.is_terminal();
            (t, Counted::Nothing)
        }
        StepOutcome::Transient { error } if attempts + 1 >= timings.max_attempts => (
            Transition::failed(
                name,
                &format!("gave up after {} attempts: {error}", attempts + 1),
                json!({ "error": error }),
            ),
            Counted::Failure(FailureKind::GaveUp),
        ),
        StepOutcome::Transient { error } => {
            let delay = backoff(timings, attempts);
            tracing::warn!(error = %error, retry_in = ?delay, "step failed, will retry");
            let at = chrono::Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
            (Transition::retrying(name, &error, at), Counted::Retry)
        }
        StepOutcome::Failed {
            kind,
            reason,
            detail,
        } => {
            tracing::error!(reason = %reason, kind = kind.as_str(), "submission failed");
            (
                Transition::failed(name, &reason, detail),
                Counted::Failure(kind),
            )
        }
        StepOutcome::Waiting { capability } => {
            tracing::info!(waiting_for = %capability, "submission waits");
            (Transition::waiting(name, &capability), Counted::Nothing)
        }
        StepOutcome::Later { detail, after } => {
            let at = chrono::Utc::now() + chrono::Duration::from_std(after).unwrap_or_default();
            (Transition::progress(name, detail, at), Counted::Nothing)
        }
        StepOutcome::Cancelled => (Transition::cancelled(name), Counted::Nothing),
    };
    Decision {
        transition,
        counted,
    }
}

/// Runs steps of a claimed submission until one does not complete.
async fn process(rt: &Runtime, mut claim: Claim, shutdown: &CancellationToken) {
    loop {
        let (step, next_state) = match next(&claim.submission) {
            Next::Nothing => break,
            Next::Cancel => {
                cancel_now(rt, &claim).await;
                return;
            }
            Next::Run(step, to) => (step, to),
        };
        let attempts = claim.submission.attempts;
        let step_span = tracing::info_span!("step", step = step.name(), attempt = attempts + 1);
        let ran = run_step(rt, &claim, step, shutdown)
            .instrument(step_span)
            .await;
        match ran.lease {
            LeaseSeen::Lost => {
                tracing::warn!(
                    step = step.name(),
                    "lease lost while the step ran; abandoning it to the new holder"
                );
                return;
            }
            LeaseSeen::CancelRequested if !matches!(ran.outcome, StepOutcome::Done { .. }) => {
                finish(rt, &claim, Transition::cancelled(step.name())).await;
                return;
            }
            _ => {}
        }
        if shutdown.is_cancelled() && ran.outcome == StepOutcome::Cancelled {
            // parked by shutdown: give the claim back untouched
            let _ = rt.store.release(&claim).await;
            return;
        }
        rt.metrics
            .step_seconds
            .get_or_create(&StepLabels {
                step: step.name().into(),
                outcome: ran.outcome.name().into(),
            })
            .observe(ran.seconds);
        let decision = decide(step, next_state, ran.outcome, attempts, &rt.timings);
        count(rt, step, decision.counted);
        // the last record of this run gives the claim back in the same transaction
        let finishing = !decision.continues() || shutdown.is_cancelled();
        let recorded = if finishing {
            rt.store
                .advance_and_release(&claim, &decision.transition)
                .await
        } else {
            rt.store.advance(&claim, &decision.transition).await
        };
        match recorded {
            Ok(updated) if finishing => {
                if updated.done {
                    crate::notify::after_end(rt, &updated).await;
                }
                return;
            }
            Ok(updated) => claim.submission = updated,
            Err(StoreError::LeaseLost(_)) => {
                tracing::warn!(
                    "lease lost before the step could be recorded; the new holder runs it again"
                );
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot record the step; the lease will expire and the step runs again");
                return;
            }
        }
    }
    if let Err(e) = rt.store.release(&claim).await {
        tracing::warn!(error = %e, "cannot release the claim; it expires by itself");
    }
}

/// Bumps the counter of a decision.
fn count(rt: &Runtime, step: Step, counted: Counted) {
    match counted {
        Counted::Nothing => {}
        Counted::Retry => {
            rt.metrics
                .retries
                .get_or_create(&StepLabel {
                    step: step.name().into(),
                })
                .inc();
        }
        Counted::Failure(kind) => {
            rt.metrics
                .failures
                .get_or_create(&FailureLabels {
                    step: step.name().into(),
                    reason: kind.as_str().into(),
                })
                .inc();
        }
    }
}

/// A submission whose cancellation was asked for while no step ran: its job
/// stopped, the cancellation recorded.
async fn cancel_now(rt: &Runtime, claim: &Claim) {
    let ctx = StepContext {
        runtime: rt.clone(),
        cancel: CancellationToken::new(),
    };
    let mut t = Transition::cancelled("cancel");
    let detail = pipeline::on_cancel(&ctx, &claim.submission).await;
    if !detail.is_null() {
        t.detail = detail;
    }
    finish(rt, claim, t).await;
}

/// Records a last transition and gives the claim back in one transaction.
async fn finish(rt: &Runtime, claim: &Claim, t: Transition) {
    match rt.store.advance_and_release(claim, &t).await {
        Ok(s) if s.done => crate::notify::after_end(rt, &s).await,
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot record {}", t.outcome.as_str()),
    }
}

/// How one step ran.
struct Ran {
    outcome: StepOutcome,
    lease: LeaseSeen,
    seconds: f64,
}

/// Runs one step with a heartbeat.
async fn run_step(rt: &Runtime, claim: &Claim, step: Step, shutdown: &CancellationToken) -> Ran {
    let cancel = CancellationToken::new();
    let ctx = StepContext {
        runtime: rt.clone(),
        cancel: cancel.clone(),
    };
    let started = Instant::now();
    let beat_every = rt.timings.lease / 3;
    let mut lease = LeaseSeen::Held;
    let step_future = pipeline::run(step, &ctx, &claim.submission);
    tokio::pin!(step_future);
    let grace = async {
        shutdown.cancelled().await;
        tokio::time::sleep(rt.timings.shutdown_grace).await;
    };
    tokio::pin!(grace);
    let outcome = loop {
        tokio::select! {
            outcome = &mut step_future => break outcome,
            () = tokio::time::sleep(beat_every) => {
                match rt.store.renew(claim, rt.timings.lease).await {
                    Ok(Renewal::Held) => {}
                    Ok(Renewal::CancelRequested) => {
                        lease = LeaseSeen::CancelRequested;
                        cancel.cancel();
                    }
                    Ok(Renewal::Lost) => {
                        lease = LeaseSeen::Lost;
                        cancel.cancel();
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot renew the lease"),
                }
            }
            () = &mut grace => {
                tracing::warn!("shutdown grace period over; parking the step");
                cancel.cancel();
                break StepOutcome::Cancelled;
            }
        }
    };
    Ran {
        outcome,
        lease,
        seconds: started.elapsed().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use stage_store::Outcome;

    fn timings() -> Timings {
        Timings {
            max_attempts: 3,
            ..Timings::default()
        }
    }

    /// The decision for a done `step`.
    fn done(step: Step, to: State, last: bool) -> Decision {
        let result = json!({ "outputs": 2 });
        decide(step, to, StepOutcome::Done { result, last }, 0, &timings())
    }

    #[test]
    fn a_done_step_moves_on_and_the_last_one_ends_the_pipeline() {
        let d = done(Step::Stage, State::Staged, false);
        assert_eq!(d.transition.outcome, Outcome::Succeeded);
        assert_eq!(d.transition.state, Some(State::Staged));
        assert_eq!(d.transition.detail, json!({ "outputs": 2 }));
        assert!(d.continues());
        let last = done(Step::Upload, State::Uploaded, true);
        assert!(last.transition.done && !last.continues());
        let imported = done(Step::Import, State::Imported, false);
        assert!(imported.transition.done, "a terminal state ends it");
    }

    #[test]
    fn transient_failures_retry_with_backoff_until_the_attempts_run_out() {
        let t = timings();
        let retry = decide(
            Step::Upload,
            State::Uploaded,
            StepOutcome::Transient {
                error: "connection refused".into(),
            },
            1,
            &t,
        );
        assert_eq!(retry.transition.outcome, Outcome::Retrying);
        assert_eq!(retry.counted, Counted::Retry);
        assert!(!retry.continues());
        let gave_up = decide(
            Step::Upload,
            State::Uploaded,
            StepOutcome::Transient {
                error: "connection refused".into(),
            },
            2,
            &t,
        );
        assert_eq!(gave_up.transition.outcome, Outcome::Failed);
        assert_eq!(gave_up.counted, Counted::Failure(FailureKind::GaveUp));
        assert!(
            gave_up
                .transition
                .error
                .as_deref()
                .unwrap()
                .contains("gave up after 3 attempts: connection refused")
        );
        assert_eq!(backoff(&t, 0), t.retry_base);
        assert_eq!(backoff(&t, 1), t.retry_base * 2);
        assert_eq!(backoff(&t, 30), t.retry_max, "capped");
    }

    #[test]
    fn failures_are_counted_by_their_kind_not_their_words() {
        let d = decide(
            Step::Follow,
            State::Finished,
            StepOutcome::failed(FailureKind::Job, "refused by nobody: the job ended FAILED"),
            0,
            &timings(),
        );
        assert_eq!(d.transition.outcome, Outcome::Failed);
        assert_eq!(d.counted, Counted::Failure(FailureKind::Job));
        let waits = decide(
            Step::Import,
            State::Imported,
            StepOutcome::Waiting {
                capability: "importer_database_url".into(),
            },
            0,
            &timings(),
        );
        assert_eq!(waits.transition.outcome, Outcome::Waiting);
        assert_eq!(waits.counted, Counted::Nothing);
        let later = decide(
            Step::Follow,
            State::Finished,
            StepOutcome::Later {
                detail: json!({ "progress": 40 }),
                after: Duration::from_secs(5),
            },
            0,
            &timings(),
        );
        assert_eq!(later.transition.outcome, Outcome::Progress);
        assert!(later.transition.retry_at.is_some());
    }

    /// A daemon's runtime on the demo site: SQLite queue, local executor, no importer.
    async fn runtime(dir: &std::path::Path) -> (Runtime, stage_demo::site::Site) {
        let (site, sources) = crate::test_site::demo_site(dir);
        let live = stage_config::LiveConfig::load(sources).await.unwrap();
        let url = live.current().settings.settings.queue_url();
        let rt = Runtime {
            config: live,
            store: stage_store::Store::connect(&url).await.unwrap(),
            metrics: std::sync::Arc::new(crate::metrics::Metrics::new()),
            timings: Timings {
                lease: Duration::from_secs(6),
                poll: Duration::from_millis(100),
                retry_base: Duration::from_millis(100),
                ..Timings::default()
            },
            workers_running: std::sync::Arc::default(),
            workers_configured: 1,
            sources: std::sync::Arc::default(),
            cluster: std::sync::Arc::default(),
            versions: std::sync::Arc::default(),
            importer: std::sync::Arc::default(),
            admin_addr: None,
            biomero_events: std::sync::Arc::default(),
            biomero_detached: std::sync::Arc::default(),
        };
        (rt, site)
    }

    /// The demo site's job script, replaced by `body`.
    fn job_script(site: &stage_demo::site::Site, body: &str) {
        use std::os::unix::fs::PermissionsExt as _;
        let p = site.dir.join("cluster/scripts/threshold.sh");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Queues the demo's TIFF submission `id` and waits until the pipeline is done with it.
    async fn run_to_the_end(rt: &Runtime, site: &stage_demo::site::Site, id: &str) -> Submission {
        let request = stage_demo::site::submission(site, id, "tiff", "threshold");
        rt.store
            .insert(&stage_store::NewSubmission {
                id: id.into(),
                workflow: "threshold".into(),
                request,
                notices: Vec::new(),
            })
            .await
            .unwrap();
        for _ in 0..600 {
            let s = rt.store.get(id).await.unwrap().unwrap();
            if s.done {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{id} did not finish in 60 s");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_runs_every_step_once_and_fails_a_failed_job_by_its_kind() {
        use crate::pipeline::record::StepRecord as _;
        use crate::pipeline::steps::collect::CollectRecord;
        let d = tempfile::tempdir().unwrap();
        let (rt, site) = runtime(d.path()).await;
        let shutdown = CancellationToken::new();
        let worker = tokio::spawn(run(rt.clone(), "w".into(), shutdown.clone()));

        // a workflow that returns its inputs: every step once, the results kept
        job_script(
            &site,
            r#"cp "$DATA_PATH"/data/in/* "$DATA_PATH"/data/out/ && echo 100%"#,
        );
        let s = run_to_the_end(&rt, &site, "copies").await;
        assert_eq!(s.state, State::Collected, "{:?}", s.error);
        let kept = CollectRecord::read(&s).unwrap();
        assert_eq!(kept.image_files, 2);
        assert!(kept.manifest.is_file());
        let events = rt.store.events("copies").await.unwrap();
        for step in ["plan", "stage", "upload", "submit", "follow", "collect"] {
            let succeeded = events
                .iter()
                .filter(|e| e.step == step && e.outcome == Outcome::Succeeded)
                .count();
            assert_eq!(succeeded, 1, "{step}: {events:#?}");
        }

        // a job that fails: the submission fails at follow, counted as a job failure
        job_script(&site, "echo 'out of memory' >&2; exit 3");
        let s = run_to_the_end(&rt, &site, "fails").await;
        assert_eq!(s.state, State::Failed);
        let error = s.error.unwrap();
        assert!(
            error.contains("exit code 3") && error.contains("out of memory"),
            "{error}"
        );
        let metrics = rt.metrics.encode();
        assert!(
            metrics.contains(r#"step="follow",reason="job""#),
            "{metrics}"
        );

        shutdown.cancel();
        worker.await.unwrap();
    }

    /// `keep_history_days`: a run finished longer ago than that keeps its row and its last
    /// event; one finished since, and every open one, keep their whole history.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_history_older_than_keep_history_days_is_cut_to_its_last_event() {
        use sqlx::Connection as _;
        let d = tempfile::tempdir().unwrap();
        let (rt, site) = runtime(d.path()).await;
        let shutdown = CancellationToken::new();
        let worker = tokio::spawn(run(rt.clone(), "w".into(), shutdown.clone()));
        job_script(&site, r#"cp "$DATA_PATH"/data/in/* "$DATA_PATH"/data/out/"#);
        let old = run_to_the_end(&rt, &site, "old").await;
        run_to_the_end(&rt, &site, "recent").await;
        shutdown.cancel();
        worker.await.unwrap();
        let whole = rt.store.events("old").await.unwrap();
        assert!(whole.len() >= 7, "every step: {whole:#?}");
        // "old" finished three days ago
        let url = rt.config.current().settings.settings.queue_url();
        let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("UPDATE biomero_stage_submissions SET updated_at = updated_at - 3 * 86400000 WHERE id = 'old'")
            .execute(&mut db)
            .await
            .unwrap();
        let stop = CancellationToken::new();
        // 0, the default, keeps everything
        let none = crate::retention::round(&rt, &stop).await.unwrap();
        assert_eq!(none, stage_store::Cut::default());
        let mut settings = std::fs::read_to_string(&site.settings).unwrap();
        settings.push_str("\nkeep_history_days = 2\n");
        std::fs::write(&site.settings, settings).unwrap();
        rt.config.reload().await.unwrap();
        let cut = crate::retention::round(&rt, &stop).await.unwrap();
        assert_eq!(cut.submissions, 1, "{cut:?}");
        // the event that ended it stays, with any note written after it
        let end = whole
            .iter()
            .rposition(|e| e.outcome != Outcome::Noted)
            .unwrap();
        assert_eq!(usize::try_from(cut.events).unwrap(), end);
        let kept = rt.store.events("old").await.unwrap();
        assert_eq!(kept, whole[end..]);
        assert_eq!(kept[0].state, old.state);
        let s = rt.store.get("old").await.unwrap().unwrap();
        assert_eq!(
            (s.state, s.data, s.request),
            (old.state, old.data, old.request)
        );
        assert!(rt.store.events("recent").await.unwrap().len() >= 7);
        // a note written later follows the last event kept, and stays with it
        rt.store
            .note("old", "notify", &json!({"mail": "not sent"}))
            .await
            .unwrap();
        let after = rt.store.events("old").await.unwrap();
        assert_eq!(after.len(), kept.len() + 1, "{after:#?}");
        assert_eq!(after[kept.len()].seq, kept[kept.len() - 1].seq + 1);
        let again = crate::retention::round(&rt, &stop).await.unwrap();
        assert_eq!(again, stage_store::Cut::default());
        assert_eq!(rt.store.events("old").await.unwrap(), after);
    }
}
