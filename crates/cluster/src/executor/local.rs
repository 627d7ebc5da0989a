//! The local executor: the job script run on this host ([`crate::local_job`]),
//! its bookkeeping in the job's folder under the local data path.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

use super::{Executor, Observed};
use crate::blocking::blocking;
use crate::error::Result;
use crate::layout::Layout;
use crate::local_job::{self, LocalState};
use crate::slurm::status::{JobState, JobStatus};
use crate::slurm::submit::{JobSpec, Submitted};

/// How often a local job's exit-code file is looked at while waiting.
const LOOK_EVERY: Duration = Duration::from_millis(500);

/// Jobs as local processes.
#[derive(Debug, Clone)]
pub struct LocalProcess {
    /// Where things live on the "cluster" (this host).
    pub layout: Layout,
    /// Where `slurm_data_path` is on this host.
    pub mount: PathBuf,
}

impl LocalProcess {
    fn job_dir(&self, id: &str) -> PathBuf {
        self.layout.local_job_dir(&self.mount, id)
    }
}

/// A local job's state as a [`JobStatus`], `None` while it runs.
fn ended(job_id: u64, state: LocalState) -> Option<Observed> {
    let (state, word, code, summary) = match state {
        LocalState::Running => return None,
        LocalState::Exited(0) => (
            JobState::Completed,
            "COMPLETED",
            0,
            format!("local job {job_id} completed"),
        ),
        LocalState::Exited(code) => (
            JobState::Failed,
            "FAILED",
            code,
            format!("local job {job_id} ended with exit code {code}"),
        ),
        LocalState::Lost => (
            JobState::Failed,
            "LOST",
            -1,
            format!(
                "local job {job_id} ended without an exit code (killed, or the host restarted)"
            ),
        ),
    };
    Some(Observed::Ended {
        status: JobStatus {
            job_id,
            slurm_state: word.to_owned(),
            exit_code: code.to_string(),
            state,
            queued_secs: None,
            ran_secs: None,
        },
        summary,
    })
}

#[async_trait]
impl Executor for LocalProcess {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn submit(&self, id: &str, spec: &JobSpec, _since: &str) -> Result<Submitted> {
        let (dir, script, env) = (
            self.job_dir(id),
            PathBuf::from(&spec.script),
            spec.env.clone(),
        );
        blocking("starting the local job", move || {
            local_job::submit(&dir, &script, &env).map(|j| Submitted {
                job_id: j.job_id,
                adopted: j.adopted,
            })
        })
        .await
    }

    async fn watch(&self, id: &str, job_id: u64, hold: Duration) -> Result<Observed> {
        let until = tokio::time::Instant::now() + hold;
        loop {
            let dir = self.job_dir(id);
            let state =
                blocking("looking at the local job", move || local_job::state(&dir)).await?;
            if let Some(o) = ended(job_id, state) {
                return Ok(o);
            }
            if tokio::time::Instant::now() >= until {
                return Ok(Observed::Running(Some(JobStatus {
                    job_id,
                    slurm_state: "RUNNING".into(),
                    exit_code: String::new(),
                    state: JobState::Active,
                    queued_secs: None,
                    ran_secs: None,
                })));
            }
            tokio::time::sleep(LOOK_EVERY).await;
        }
    }

    async fn cancel(&self, id: &str, _job_id: u64) -> Result<()> {
        let dir = self.job_dir(id);
        blocking("stopping the local job", move || local_job::cancel(&dir)).await
    }

    fn log_path(&self, id: &str, _job_id: u64) -> String {
        local_job::log_path(&self.job_dir(id)).display().to_string()
    }

    async fn log_tail(&self, id: &str, _job_id: u64, lines: u32) -> Result<String> {
        let dir = self.job_dir(id);
        blocking("reading the local job's log", move || {
            Ok(local_job::tail(&dir, lines as usize))
        })
        .await
    }
}
