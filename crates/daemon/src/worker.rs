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

use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::json;
use stage_store::{Claim, StoreError, Transition};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::metrics::{FailureLabels, StepLabel, StepLabels};
use crate::pipeline::{self, Step, StepContext, StepOutcome};
use crate::runtime::Runtime;

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
pub fn backoff(rt: &Runtime, attempts: i32) -> std::time::Duration {
    let factor = 2u32.saturating_pow(u32::try_from(attempts.clamp(0, 20)).unwrap_or(20));
    rt.timings
        .retry_base
        .saturating_mul(factor)
        .min(rt.timings.retry_max)
}

/// What happened to the lease while a step ran.
enum Heartbeat {
    Fine,
    Cancelled,
    Lost,
}

/// Runs steps of a claimed submission until one does not complete.
async fn process(rt: &Runtime, mut claim: Claim, shutdown: &CancellationToken) {
    loop {
        let s = &claim.submission;
        if s.done {
            break;
        }
        if s.cancel_requested {
            let ctx = StepContext {
                runtime: rt.clone(),
                cancel: CancellationToken::new(),
            };
            let mut t = Transition::cancelled("cancel");
            let detail = pipeline::on_cancel(&ctx, s).await;
            if !detail.is_null() {
                t.detail = detail;
            }
            finish(rt, &claim, t).await;
            return;
        }
        let Some((step, next_state)) = Step::after(s.state) else {
            break;
        };
        let step_span = tracing::info_span!("step", step = step.name(), attempt = s.attempts + 1);
        let (outcome, heartbeat, took) = run_step(rt, &claim, step, shutdown)
            .instrument(step_span)
            .await;
        match heartbeat {
            Heartbeat::Lost => {
                tracing::warn!(
                    step = step.name(),
                    "lease lost while the step ran; abandoning it to the new holder"
                );
                return;
            }
            Heartbeat::Cancelled if !matches!(outcome, StepOutcome::Done { .. }) => {
                finish(rt, &claim, Transition::cancelled(step.name())).await;
                return;
            }
            _ => {}
        }
        let outcome = if shutdown.is_cancelled() && matches!(outcome, StepOutcome::Cancelled) {
            // parked by shutdown: give the claim back untouched
            let _ = rt.store.release(&claim).await;
            return;
        } else {
            outcome
        };
        rt.metrics
            .step_seconds
            .get_or_create(&StepLabels {
                step: step.name().into(),
                outcome: outcome_name(&outcome).into(),
            })
            .observe(took);
        let transition = match outcome {
            StepOutcome::Done { result, last } => {
                let mut t = Transition::succeeded(step.name(), next_state, result);
                t.done = last || next_state.is_terminal();
                t
            }
            StepOutcome::Transient { error } => {
                if s.attempts + 1 >= rt.timings.max_attempts {
                    rt.metrics
                        .failures
                        .get_or_create(&FailureLabels {
                            step: step.name().into(),
                            reason: "gave_up".into(),
                        })
                        .inc();
                    Transition::failed(
                        step.name(),
                        &format!("gave up after {} attempts: {error}", s.attempts + 1),
                        json!({ "error": error }),
                    )
                } else {
                    rt.metrics
                        .retries
                        .get_or_create(&StepLabel {
                            step: step.name().into(),
                        })
                        .inc();
                    let delay = backoff(rt, s.attempts);
                    tracing::warn!(error = %error, retry_in = ?delay, "step failed, will retry");
                    let at =
                        chrono::Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                    Transition::retrying(step.name(), &error, at)
                }
            }
            StepOutcome::Failed { reason, detail } => {
                rt.metrics
                    .failures
                    .get_or_create(&FailureLabels {
                        step: step.name().into(),
                        reason: failure_kind(&reason).into(),
                    })
                    .inc();
                tracing::error!(reason = %reason, "submission failed");
                Transition::failed(step.name(), &reason, detail)
            }
            StepOutcome::Waiting { capability } => {
                tracing::info!(waiting_for = %capability, "submission waits");
                Transition::waiting(step.name(), &capability)
            }
            StepOutcome::Later { detail, after } => {
                let at = chrono::Utc::now() + chrono::Duration::from_std(after).unwrap_or_default();
                Transition::progress(step.name(), detail, at)
            }
            StepOutcome::Cancelled => Transition::cancelled(step.name()),
        };
        let continues = transition.outcome == stage_store::Outcome::Succeeded && !transition.done;
        // the last record of this run gives the claim back in the same transaction
        let finishing = !continues || shutdown.is_cancelled();
        let recorded = if finishing {
            rt.store.advance_and_release(&claim, &transition).await
        } else {
            rt.store.advance(&claim, &transition).await
        };
        match recorded {
            Ok(_) if finishing => return,
            Ok(updated) => {
                claim.submission = updated;
                if shutdown.is_cancelled() {
                    break;
                }
            }
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

/// Records a last transition and gives the claim back in one transaction.
async fn finish(rt: &Runtime, claim: &Claim, t: Transition) {
    if let Err(e) = rt.store.advance_and_release(claim, &t).await {
        tracing::warn!(error = %e, "cannot record {}", t.outcome.as_str());
    }
}

/// Runs one step with a heartbeat; returns its outcome, what the heartbeat saw, and its duration.
async fn run_step(
    rt: &Runtime,
    claim: &Claim,
    step: Step,
    shutdown: &CancellationToken,
) -> (StepOutcome, Heartbeat, f64) {
    let cancel = CancellationToken::new();
    let ctx = StepContext {
        runtime: rt.clone(),
        cancel: cancel.clone(),
    };
    let started = Instant::now();
    let beat_every = rt.timings.lease / 3;
    let mut heartbeat = Heartbeat::Fine;
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
                    Ok(true) => {
                        heartbeat = Heartbeat::Cancelled;
                        cancel.cancel();
                    }
                    Ok(false) => {}
                    Err(StoreError::LeaseLost(_)) => {
                        cancel.cancel();
                        heartbeat = Heartbeat::Lost;
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
    (outcome, heartbeat, started.elapsed().as_secs_f64())
}

fn outcome_name(o: &StepOutcome) -> &'static str {
    match o {
        StepOutcome::Done { .. } => "done",
        StepOutcome::Transient { .. } => "retry",
        StepOutcome::Failed { .. } => "failed",
        StepOutcome::Waiting { .. } => "waiting",
        StepOutcome::Later { .. } => "later",
        StepOutcome::Cancelled => "cancelled",
    }
}

/// A coarse kind for the failures metric.
fn failure_kind(reason: &str) -> &'static str {
    if reason.contains("refused") || reason.contains("not a valid submission") {
        "invalid"
    } else {
        "step"
    }
}
