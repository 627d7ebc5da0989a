//! How a job's files reach its folder on the cluster and come back: the
//! transport strategy, chosen once per configuration ([`crate::strategy`]).
//!
//! - [`SshTar`]: tar over one SSH channel, resumable and verified (the default);
//! - [`MountedCopy`]: a local copy, when this host mounts `slurm_data_path`
//!   (`local_data_path`, or the data path itself with the local executor).
//!
//! A new transport (rsync, a object store) is one new file implementing [`Transport`].

mod mounted;
mod ssh_tar;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use stage_common::meter::Meter;

pub use mounted::MountedCopy;
pub use ssh_tar::SshTar;

use crate::error::Result;
use crate::transfer::upload::Streamed;
use crate::transfer::{OutputLimits, TransferReport};

/// Moves a job's files between this host and its folder on the cluster.
#[async_trait]
pub trait Transport: Send + Sync + std::fmt::Debug {
    /// How it moves files (`tar-over-ssh`, `local-copy`).
    fn method(&self) -> &'static str;

    /// The staged inputs at `inputs` into the job folder's `data/in` of
    /// submission `id`, with `data/out` and `data/gt` created beside them.
    /// Resumable: what arrived intact before is not sent again. What is sent is counted on
    /// `meter` as it goes.
    async fn upload(&self, id: &str, inputs: &Path, meter: Arc<Meter>) -> Result<TransferReport>;

    /// Whether [`Transport::upload_streamed`] can send the inputs while they are staged.
    fn streams(&self) -> bool {
        false
    }

    /// The outputs named on `names` (relative to `inputs`), each sent into `data/in` of
    /// submission `id` as soon as its name arrives, on one verified stream that ends when
    /// the senders are dropped. Only into a `data/in` that holds nothing yet.
    async fn upload_streamed(
        &self,
        id: &str,
        inputs: &Path,
        names: std::sync::mpsc::Receiver<String>,
        meter: Arc<Meter>,
    ) -> Result<Streamed> {
        let _ = (id, inputs, names, meter);
        Err(crate::ClusterError::Invalid(format!(
            "the {} transport sends the inputs after staging",
            self.method()
        )))
    }

    /// The upload step after [`Transport::upload_streamed`]: `data/out` and `data/gt`
    /// created and the streamed upload's report when it still stands (this side and the
    /// cluster hold what was sent), `None` when [`Transport::upload`] must resume it.
    async fn confirm_streamed(
        &self,
        id: &str,
        inputs: &Path,
        sent: &Streamed,
    ) -> Result<Option<TransferReport>> {
        let _ = (id, inputs, sent);
        Ok(None)
    }

    /// The job folder's `data/out` of submission `id` into `target`.
    /// An empty `data/out` is [`crate::ClusterError::EmptyOutput`]; one beyond `limits` is
    /// refused before anything is transferred. What is fetched is counted on `meter`.
    async fn download(
        &self,
        id: &str,
        target: &Path,
        limits: &OutputLimits,
        meter: Arc<Meter>,
    ) -> Result<TransferReport>;

    /// Removes the job folder of submission `id` and, with `job_id`, the job's log.
    async fn remove(&self, id: &str, job_id: Option<u64>) -> Result<()>;
}
