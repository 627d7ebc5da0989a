//! Following many jobs with one query per poll.
//!
//! Each follow step registers its job id and waits on a channel; one task
//! asks Slurm about every registered job at once (`sacct -j a,b,c`) every
//! poll interval — and right away when a job is registered — and hands each
//! step its job's state. A failing query (dropped connection) is logged and
//! retried at the next poll; the steps just keep waiting.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::status::{JobStatus, StatusQuery, statuses};
use crate::ssh::Remote;

type Senders = HashMap<u64, watch::Sender<Option<JobStatus>>>;

/// Follows jobs; cheap to clone.
#[derive(Clone)]
pub struct Watcher {
    jobs: Arc<Mutex<Senders>>,
    wake: Arc<Notify>,
    polls: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

impl Watcher {
    /// Starts the polling task on the current runtime.
    pub fn spawn(remote: Arc<Remote>, query: StatusQuery, poll: Duration) -> Self {
        let w = Watcher {
            jobs: Arc::new(Mutex::new(HashMap::new())),
            wake: Arc::new(Notify::new()),
            polls: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        };
        let (jobs, wake, polls) = (w.jobs.clone(), w.wake.clone(), w.polls.clone());
        tokio::spawn(async move {
            loop {
                let ids: Vec<u64> = {
                    let mut j = jobs
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    j.retain(|_, tx| tx.receiver_count() > 0);
                    j.keys().copied().collect()
                };
                if ids.is_empty() {
                    // only a registration ends the wait; a strong count of 1 means every Watcher is gone
                    if Arc::strong_count(&jobs) == 1 {
                        return;
                    }
                    tokio::select! {
                        () = wake.notified() => {}
                        () = tokio::time::sleep(poll) => {}
                    }
                    continue;
                }
                polls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                match statuses(&remote, &ids, &query).await {
                    Ok(m) => {
                        let j = jobs
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        for (id, s) in m {
                            if let Some(tx) = j.get(&id) {
                                tx.send_replace(Some(s));
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, jobs = ids.len(), "cannot ask Slurm about the jobs; asking again at the next poll");
                    }
                }
                tokio::select! {
                    () = wake.notified() => {}
                    () = tokio::time::sleep(poll) => {}
                }
            }
        });
        w
    }

    /// Follows `job_id`: the receiver sees every state Slurm reports for it.
    pub fn follow(&self, job_id: u64) -> watch::Receiver<Option<JobStatus>> {
        let rx = {
            let mut j = self
                .jobs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            j.entry(job_id)
                .or_insert_with(|| watch::channel(None).0)
                .subscribe()
        };
        self.wake.notify_one();
        rx
    }

    /// Queries sent so far (for tests and metrics).
    pub fn polls(&self) -> u64 {
        self.polls.load(std::sync::atomic::Ordering::Relaxed)
    }
}
