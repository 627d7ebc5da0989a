//! The `follow` step: wait for the job to end.
//!
//! The job is registered with the daemon's watcher, which asks Slurm about
//! every followed job in one query per poll (`sacct`, or `squeue`/`scontrol`
//! without accounting). The step waits a few polls; a job still running then
//! gives its worker back — the submission is recorded as in progress (Slurm's
//! state and the `NN%` from the job log) and picked up again at the next poll,
//! so two workers can follow any number of jobs. A completed job moves on; a
//! failed or timed-out one fails the submission with the log's tail as the
//! reason; a cancelled submission `scancel`s its job; a job Slurm has forgotten
//! (no accounting, purged) fails the submission 15 minutes after it was submitted.

use std::time::Duration;

use serde_json::{Value, json};
use stage_cluster::ClusterError;
use stage_cluster::local_job::{self, LocalState};
use stage_cluster::slurm::status::{JobState, JobStatus};
use stage_cluster::slurm::{log, submit};
use stage_config::settings::Executor;
use stage_store::Submission;

use super::super::{StepContext, StepOutcome};

/// Polls a step waits before it gives its worker back.
const HOLD_POLLS: u32 = 3;
/// How long after submission a job Slurm does not know counts as lost.
const FORGOTTEN_AFTER_MINUTES: i64 = 15;

/// Stops the job `job_id` of submission `id`: `scancel` on the cluster of the
/// configuration in force, or, with the local executor, its process group.
pub async fn scancel(ctx: &StepContext, id: &str, job_id: u64) -> Result<(), ClusterError> {
    let config = ctx.runtime.config.current();
    let cluster = ctx.runtime.cluster.get(&config)?;
    if cluster.executor == Executor::Local
        && let Some(dir) = cluster.local_job_dir(id)
    {
        return stop_local(dir).await;
    }
    submit::cancel(&cluster.remote, job_id).await
}

/// Stops the local job in `dir` (SIGTERM to its process group).
async fn stop_local(dir: std::path::PathBuf) -> Result<(), ClusterError> {
    tokio::task::spawn_blocking(move || local_job::cancel(&dir))
        .await
        .map_err(|e| ClusterError::Invalid(format!("the stop task failed: {e}")))?
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
    let job_id = match super::recorded(s, "submit", "job_id") {
        Ok(v) => match v.as_u64() {
            Some(id) => id,
            None => {
                return StepOutcome::Failed {
                    reason: format!("the recorded job id `{v}` is not a number"),
                    detail: json!({}),
                };
            }
        },
        Err(o) => return o,
    };
    let cluster = match super::cluster(ctx) {
        Ok(c) => c,
        Err(o) => return o,
    };
    if cluster.executor == Executor::Local
        && let Some(job_dir) = cluster.local_job_dir(&s.id)
    {
        return follow_local(ctx, job_id, &job_dir).await;
    }
    let poll = poll_interval(ctx);
    let mut rx = cluster.watcher.follow(job_id);
    let hold = tokio::time::sleep(poll * HOLD_POLLS);
    tokio::pin!(hold);
    let mut last: Option<JobStatus> = None;
    loop {
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return StepOutcome::Transient { error: "the job watcher stopped".into() };
                }
                let status = rx.borrow_and_update().clone();
                let Some(st) = status else { continue };
                match st.state {
                    JobState::Completed => {
                        tracing::info!(job_id, "job completed");
                        return StepOutcome::Done {
                            result: json!({ "job_id": job_id, "slurm_state": st.slurm_state, "exit_code": st.exit_code }),
                            last: false,
                        };
                    }
                    JobState::Failed | JobState::Cancelled => {
                        let tail = log::tail(&cluster.remote, job_id, 15).await.unwrap_or_default();
                        let reason = format!(
                            "Slurm job {job_id} ended {} (exit code {}){}",
                            st.slurm_state,
                            st.exit_code,
                            if tail.trim().is_empty() {
                                String::new()
                            } else {
                                format!("; the end of its log ({}): {}", stage_cluster::Layout::job_log(job_id), tail.trim().lines().collect::<Vec<_>>().join(" | "))
                            }
                        );
                        tracing::warn!(job_id, state = %st.slurm_state, "job did not complete");
                        return StepOutcome::Failed {
                            reason,
                            detail: json!({ "job_id": job_id, "slurm_state": st.slurm_state, "exit_code": st.exit_code, "log_tail": tail }),
                        };
                    }
                    JobState::Active | JobState::Unknown => last = Some(st),
                }
            }
            () = ctx.cancel.cancelled() => {
                if let Err(e) = submit::cancel(&cluster.remote, job_id).await {
                    tracing::warn!(job_id, error = %e, "cannot scancel the job");
                } else {
                    tracing::info!(job_id, "job cancelled (scancel)");
                }
                return StepOutcome::Cancelled;
            }
            () = &mut hold => break,
        }
    }
    // a job Slurm does not know (any more) long after it was submitted: purged without
    // accounting, or outside the sacct window; waiting longer cannot help
    let forgotten = last.as_ref().is_some_and(|l| l.state == JobState::Unknown)
        && s.data
            .get("submit")
            .and_then(|d| d.get("submitted_at"))
            .and_then(|t| serde_json::from_value::<chrono::DateTime<chrono::Utc>>(t.clone()).ok())
            .is_some_and(|t| {
                chrono::Utc::now() - t > chrono::Duration::minutes(FORGOTTEN_AFTER_MINUTES)
            });
    if forgotten {
        let tail = log::tail(&cluster.remote, job_id, 15)
            .await
            .unwrap_or_default();
        return StepOutcome::Failed {
            reason: format!(
                "Slurm no longer knows job {job_id} (no accounting, or outside the sacct window: set slurm_accounting / sacct_days_ago); the end of its log: {}",
                tail.trim().lines().collect::<Vec<_>>().join(" | ")
            ),
            detail: json!({ "job_id": job_id, "log_tail": tail }),
        };
    }
    let progress = match log::tail(&cluster.remote, job_id, 20).await {
        Ok(t) => log::progress(&t).map_or(Value::Null, |p| json!(p)),
        Err(_) => Value::Null,
    };
    StepOutcome::Later {
        detail: json!({
            "job_id": job_id,
            "slurm_state": last.as_ref().map(|l| l.slurm_state.clone()),
            "progress": progress,
        }),
        after: poll,
    }
}

/// Follows a job of the local executor: its exit code file, looked at every
/// half second for a few polls, then the worker is given back.
async fn follow_local(ctx: &StepContext, job_id: u64, job_dir: &std::path::Path) -> StepOutcome {
    let poll = poll_interval(ctx);
    let until = tokio::time::Instant::now() + poll * HOLD_POLLS;
    loop {
        let state = match local_job::state(job_dir) {
            Ok(st) => st,
            Err(e) => return super::cluster_outcome(&e),
        };
        let ended = |state: &str, code: i32| {
            let tail = local_job::tail(job_dir, 15);
            StepOutcome::Failed {
                reason: format!(
                    "local job {job_id} {state}; the end of its log ({}): {}",
                    local_job::log_path(job_dir).display(),
                    tail.trim().lines().collect::<Vec<_>>().join(" | ")
                ),
                detail: json!({ "job_id": job_id, "exit_code": code, "log_tail": tail }),
            }
        };
        match state {
            LocalState::Exited(0) => {
                tracing::info!(job_id, "local job completed");
                return StepOutcome::Done {
                    result: json!({ "job_id": job_id, "slurm_state": "COMPLETED", "exit_code": 0 }),
                    last: false,
                };
            }
            LocalState::Exited(code) => {
                return ended(&format!("ended with exit code {code}"), code);
            }
            LocalState::Lost => {
                return ended(
                    "ended without an exit code (killed, or the host restarted)",
                    -1,
                );
            }
            LocalState::Running => {}
        }
        if tokio::time::Instant::now() >= until {
            let progress =
                log::progress(&local_job::tail(job_dir, 20)).map_or(Value::Null, |p| json!(p));
            return StepOutcome::Later {
                detail: json!({ "job_id": job_id, "slurm_state": "RUNNING", "progress": progress }),
                after: poll,
            };
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            () = ctx.cancel.cancelled() => {
                match stop_local(job_dir.to_path_buf()).await {
                    Ok(()) => tracing::info!(job_id, "local job stopped"),
                    Err(e) => tracing::warn!(job_id, error = %e, "cannot stop the local job"),
                }
                return StepOutcome::Cancelled;
            }
        }
    }
}
