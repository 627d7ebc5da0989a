//! The default transport: tar over one SSH channel ([`crate::transfer`]).

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use stage_common::meter::Meter;

use super::Transport;
use crate::error::{ClusterError, Result};
use crate::layout::Layout;
use crate::ssh::Remote;
use crate::transfer::{OutputLimits, TransferReport, download, listing, upload};

/// Tar over SSH to the cluster's `slurm_data_path`.
#[derive(Debug, Clone)]
pub struct SshTar {
    /// The connection.
    pub remote: Arc<Remote>,
    /// Where things live on the cluster.
    pub layout: Layout,
}

#[async_trait]
impl Transport for SshTar {
    fn method(&self) -> &'static str {
        "tar-over-ssh"
    }

    async fn upload(&self, id: &str, inputs: &Path, meter: Arc<Meter>) -> Result<TransferReport> {
        let l = &self.layout;
        let report = upload::upload_metered(&self.remote, inputs, &l.inputs(id), meter).await?;
        self.remote
            .run(
                "mkdir",
                &["-p".into(), "--".into(), l.outputs(id), l.ground_truth(id)],
            )
            .await?;
        Ok(report)
    }

    async fn download(
        &self,
        id: &str,
        target: &Path,
        limits: &OutputLimits,
        meter: Arc<Meter>,
    ) -> Result<TransferReport> {
        // tar sends a hard link to a file outside the job folder as a plain file under its
        // one name in the archive: refuse it from the cluster's own listing first
        let linked = listing::remote_links(&self.remote, &self.layout.job_dir(id)).await?;
        if let Some(l) = listing::linked_from_outside(&linked, "data/out").first() {
            return Err(ClusterError::Invalid(format!(
                "the job's output is refused: {}: is a hard link to a file outside the job's folder ({} names for one file); outputs must be files of their own",
                l.path.trim_start_matches("data/out/"),
                l.nlink
            )));
        }
        download::download_metered(
            &self.remote,
            &self.layout.outputs(id),
            target,
            limits,
            meter,
        )
        .await
    }

    async fn remove(&self, id: &str, job_id: Option<u64>) -> Result<()> {
        let mut args = vec!["-rf".into(), "--".into(), self.layout.job_dir(id)];
        args.extend(job_id.map(Layout::job_log));
        self.remote.run("rm", &args).await.map(|_| ())
    }
}
