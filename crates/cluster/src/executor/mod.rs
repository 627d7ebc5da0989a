//! What runs a job: the executor strategy, chosen once per configuration
//! ([`crate::strategy`]).
//!
//! - [`Slurm`]: `sbatch` over SSH, followed with one query per poll for all jobs;
//! - [`LocalProcess`]: the job script run on this host in its own process group.
//!
//! A new executor (PBS, Kubernetes) is one new file implementing [`Executor`].

mod local;
mod slurm;

use std::time::Duration;

use async_trait::async_trait;

pub use local::LocalProcess;
pub use slurm::Slurm;

use crate::error::Result;
use crate::slurm::status::JobStatus;
use crate::slurm::submit::{JobSpec, Submitted};

/// What a look at a job found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// The job ended: completed (`status.state` is `Completed`) or not.
    Ended {
        /// Its last status.
        status: JobStatus,
        /// How it ended, in words, naming the job (`Slurm job 7 ended TIMEOUT (exit code 0:15)`).
        summary: String,
    },
    /// Still queued or running when the wait ended; `None` before the
    /// scheduler said anything, a status in state `Unknown` when it does not
    /// know the job (yet, or any more).
    Running(Option<JobStatus>),
}

/// Submits, follows and stops jobs.
#[async_trait]
pub trait Executor: Send + Sync + std::fmt::Debug {
    /// Its name in settings and records (`slurm`, `local`).
    fn name(&self) -> &'static str;

    /// Starts the job of submission `id` exactly once: a job of the same name
    /// (submitted after `since`) or an earlier start is adopted instead.
    async fn submit(&self, id: &str, spec: &JobSpec, since: &str) -> Result<Submitted>;

    /// Waits at most `hold` for the job to end.
    async fn watch(&self, id: &str, job_id: u64, hold: Duration) -> Result<Observed>;

    /// Stops the job.
    async fn cancel(&self, id: &str, job_id: u64) -> Result<()>;

    /// Where the job's log is, for messages.
    fn log_path(&self, id: &str, job_id: u64) -> String;

    /// The last `lines` lines of the job's log (empty when there is none yet).
    async fn log_tail(&self, id: &str, job_id: u64, lines: u32) -> Result<String>;
}
