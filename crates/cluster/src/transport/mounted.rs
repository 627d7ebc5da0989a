//! The mounted transport: `slurm_data_path` is a folder on this host, so a
//! verified local copy replaces the network ([`crate::transfer::local`]).

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::Transport;
use crate::blocking::blocking;
use crate::error::{ClusterError, Result};
use crate::layout::Layout;
use crate::transfer::{TransferReport, local};

/// A local copy into the mounted data path.
#[derive(Debug, Clone)]
pub struct MountedCopy {
    /// Where things live on the cluster.
    pub layout: Layout,
    /// Where this host mounts `slurm_data_path`.
    pub mount: PathBuf,
}

impl MountedCopy {
    /// The job folder of submission `id` on this host.
    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.layout.local_job_dir(&self.mount, id)
    }
}

#[async_trait]
impl Transport for MountedCopy {
    fn method(&self) -> &'static str {
        "local-copy"
    }

    async fn upload(&self, id: &str, inputs: &Path) -> Result<TransferReport> {
        let (job, inputs) = (self.job_dir(id), inputs.to_path_buf());
        blocking("the copy to the data path", move || {
            for d in ["data/out", "data/gt"] {
                let dir = job.join(d);
                std::fs::create_dir_all(&dir).map_err(|e| ClusterError::io(&dir, e))?;
            }
            local::copy_tree(&inputs, &job.join("data/in"))
        })
        .await
    }

    async fn download(&self, id: &str, target: &Path) -> Result<TransferReport> {
        let (from, to) = (self.job_dir(id).join("data/out"), target.to_path_buf());
        blocking("the copy from the data path", move || {
            let empty = std::fs::read_dir(&from)
                .map_err(|e| ClusterError::io(&from, e))?
                .next()
                .is_none();
            if empty {
                return Err(ClusterError::EmptyOutput(from.display().to_string()));
            }
            local::copy_tree(&from, &to)
        })
        .await
    }

    async fn remove(&self, id: &str, _job_id: Option<u64>) -> Result<()> {
        // the job's log lives in its folder with the mounted layout's executors
        let dir = self.job_dir(id);
        blocking(
            "removing the job folder",
            move || match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(ClusterError::io(&dir, e))
                }
                _ => Ok(()),
            },
        )
        .await
    }
}
