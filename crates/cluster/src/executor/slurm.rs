//! The Slurm executor: `sbatch` over SSH with the job named after the
//! submission (found again after a crash), one `sacct` per poll for every
//! followed job ([`crate::slurm::watch`]), `scancel`, `~/omero-<id>.log`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Executor, Observed};
use crate::error::{ClusterError, Result};
use crate::layout::Layout;
use crate::slurm::log;
use crate::slurm::status::{JobState, JobStatus};
use crate::slurm::submit::{self, JobSpec, Submitted};
use crate::slurm::watch::Watcher;
use crate::ssh::Remote;

/// Jobs through Slurm.
#[derive(Debug, Clone)]
pub struct Slurm {
    /// The connection.
    pub remote: Arc<Remote>,
    /// Follows every job with one query per poll.
    pub watcher: Watcher,
}

#[async_trait]
impl Executor for Slurm {
    fn name(&self) -> &'static str {
        "slurm"
    }

    async fn submit(&self, _id: &str, spec: &JobSpec, since: &str) -> Result<Submitted> {
        submit::submit(&self.remote, spec, since).await
    }

    async fn watch(&self, _id: &str, job_id: u64, hold: Duration) -> Result<Observed> {
        let mut rx = self.watcher.follow(job_id);
        let hold = tokio::time::sleep(hold);
        tokio::pin!(hold);
        let mut last: Option<JobStatus> = None;
        // an end reported with its start but not yet its end time (accounting can lag
        // the state): kept for one more poll, so the run time is not lost
        let mut ended_early: Option<JobStatus> = None;
        let ended = |st: JobStatus| {
            let summary = format!(
                "Slurm job {job_id} ended {} (exit code {})",
                st.slurm_state, st.exit_code
            );
            Observed::Ended {
                status: st,
                summary,
            }
        };
        loop {
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return Err(ClusterError::Unavailable("the job watcher stopped".into()));
                    }
                    let Some(st) = rx.borrow_and_update().clone() else { continue };
                    match st.state {
                        JobState::Completed | JobState::Failed | JobState::Cancelled => {
                            let lacks_end = st.queued_secs.is_some() && st.ran_secs.is_none();
                            if lacks_end && ended_early.is_none() {
                                ended_early = Some(st);
                                continue;
                            }
                            return Ok(ended(st));
                        }
                        // a later poll cannot take an end back: the first report stands
                        JobState::Active | JobState::Unknown => match ended_early.take() {
                            Some(first) => return Ok(ended(first)),
                            None => last = Some(st),
                        },
                    }
                }
                () = &mut hold => {
                    return Ok(ended_early.map_or(Observed::Running(last), ended));
                }
            }
        }
    }

    async fn cancel(&self, _id: &str, job_id: u64) -> Result<()> {
        submit::cancel(&self.remote, job_id).await
    }

    fn log_path(&self, _id: &str, job_id: u64) -> String {
        Layout::job_log(job_id)
    }

    async fn log_tail(&self, _id: &str, job_id: u64, lines: u32) -> Result<String> {
        log::tail(&self.remote, job_id, lines).await
    }
}
