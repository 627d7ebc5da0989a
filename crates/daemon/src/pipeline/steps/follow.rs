//! The `follow` step: wait for the job to end, through the configuration's executor.
//!
//! With Slurm the job is registered with the daemon's watcher, which asks
//! Slurm about every followed job in one query per poll (`sacct`, or
//! `squeue`/`scontrol` without accounting); a local job's exit-code file is
//! looked at every half second. The step waits a few polls; a job still
//! running then gives its worker back — the submission is recorded as in
//! progress (the scheduler's state and the `NN%` from the job log) and picked
//! up again at the next poll, so two workers can follow any number of jobs. A
//! completed job moves on; a failed or timed-out one fails the submission with
//! the log's tail as the reason; a cancelled submission stops its job; a job
//! Slurm has forgotten (no accounting, purged) fails the submission 15 minutes
//! after it was submitted.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};
use stage_cluster::slurm::log;
use stage_cluster::slurm::status::{JobState, JobStatus};
use stage_cluster::{ClusterError, Observed};
use stage_store::Submission;

use super::super::record::StepRecord;
use super::super::{FailureKind, Step, StepContext, StepOutcome};
use super::submit::SubmitRecord;
use super::{cluster_outcome, one_line};
use crate::metrics::Metrics;

/// Polls a step waits before it gives its worker back.
const HOLD_POLLS: u32 = 3;
/// How long after submission a job Slurm does not know counts as lost.
const FORGOTTEN_AFTER_MINUTES: i64 = 15;

/// What the follow step keeps: how the job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowRecord {
    /// The job id.
    pub job_id: u64,
    /// The scheduler's final state word (`COMPLETED`).
    pub slurm_state: String,
    /// Its exit code (`0:0`; a local job's plain code).
    #[serde(deserialize_with = "text_or_number")]
    pub exit_code: String,
}

impl StepRecord for FollowRecord {
    const STEP: Step = Step::Follow;
}

/// An exit code recorded as text (Slurm's `0:0`) or, by releases before step
/// records, as a number (a local job's `0`).
fn text_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "an exit code is text or a number, not {other}"
        ))),
    }
}

/// Stops the job `job_id` of submission `id` with the executor of the configuration in force.
pub async fn stop(ctx: &StepContext, id: &str, job_id: u64) -> Result<(), ClusterError> {
    let config = ctx.runtime.config.current();
    let cluster = ctx.runtime.cluster.get(&config)?;
    cluster.executor.cancel(id, job_id).await
}

/// `follow_poll_secs` of the configuration in force.
fn poll_interval(ctx: &StepContext) -> Duration {
    Duration::from_secs(
        ctx.runtime
            .config
            .current()
            .settings
            .settings
            .follow_poll_secs,
    )
}

/// Runs the step.
pub async fn run(ctx: &StepContext, s: &Submission) -> StepOutcome {
    let submitted = match SubmitRecord::read(s) {
        Ok(r) => r,
        Err(o) => return o,
    };
    let job_id = submitted.job_id;
    let cluster = match super::cluster(ctx) {
        Ok(c) => c,
        Err(o) => return o,
    };
    let executor = &cluster.executor;
    let poll = poll_interval(ctx);
    let observed = tokio::select! {
        o = executor.watch(&s.id, job_id, poll * HOLD_POLLS) => o,
        () = ctx.cancel.cancelled() => {
            match executor.cancel(&s.id, job_id).await {
                Ok(()) => tracing::info!(job_id, "job stopped"),
                Err(e) => tracing::warn!(job_id, error = %e, "cannot stop the job"),
            }
            return StepOutcome::Cancelled;
        }
    };
    let tail = |lines| async move {
        executor
            .log_tail(&s.id, job_id, lines)
            .await
            .unwrap_or_default()
    };
    if let Ok(Observed::Ended { status, .. }) = &observed {
        let m = &ctx.runtime.metrics;
        #[allow(clippy::cast_precision_loss)]
        {
            if let Some(q) = status.queued_secs {
                Metrics::observe(&m.slurm_queue_wait, &s.workflow, q as f64);
            }
            if let Some(r) = status.ran_secs {
                Metrics::observe(&m.slurm_run, &s.workflow, r as f64);
            }
        }
    }
    match observed {
        Err(e) => cluster_outcome(&e),
        Ok(Observed::Ended { status, summary }) if status.state == JobState::Completed => {
            tracing::info!(job_id, "{summary}");
            FollowRecord {
                job_id,
                slurm_state: status.slurm_state,
                exit_code: status.exit_code,
            }
            .done(false)
        }
        Ok(Observed::Ended { status, summary }) => {
            let tail = tail(15).await;
            let reason = if tail.trim().is_empty() {
                summary
            } else {
                format!(
                    "{summary}; the end of its log ({}): {}",
                    executor.log_path(&s.id, job_id),
                    one_line(&tail)
                )
            };
            tracing::warn!(job_id, state = %status.slurm_state, "job did not complete");
            StepOutcome::failed(FailureKind::Job, reason).with_detail(json!({
                "job_id": job_id,
                "slurm_state": status.slurm_state,
                "exit_code": status.exit_code,
                "log_tail": tail,
            }))
        }
        Ok(Observed::Running(last)) => {
            if forgotten(last.as_ref(), &submitted) {
                let tail = tail(15).await;
                return StepOutcome::failed(
                    FailureKind::Job,
                    format!(
                        "Slurm no longer knows job {job_id} (no accounting, or outside the sacct window: set slurm_accounting / sacct_days_ago); the end of its log: {}",
                        one_line(&tail)
                    ),
                )
                .with_detail(json!({ "job_id": job_id, "log_tail": tail }));
            }
            let progress = log::progress(&tail(20).await).map_or(Value::Null, |p| json!(p));
            StepOutcome::Later {
                detail: json!({
                    "job_id": job_id,
                    "slurm_state": last.as_ref().map(|l| l.slurm_state.clone()),
                    "progress": progress,
                }),
                after: poll,
            }
        }
    }
}

/// A job the scheduler does not know (any more) long after it was submitted:
/// purged without accounting, or outside the sacct window; waiting longer cannot help.
fn forgotten(last: Option<&JobStatus>, submitted: &SubmitRecord) -> bool {
    last.is_some_and(|l| l.state == JobState::Unknown)
        && chrono::Utc::now() - submitted.submitted_at
            > chrono::Duration::minutes(FORGOTTEN_AFTER_MINUTES)
}
