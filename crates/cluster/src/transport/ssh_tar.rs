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

impl SshTar {
    /// `data/out` and `data/gt` of submission `id`, beside its inputs.
    async fn make_output_dirs(&self, id: &str) -> Result<()> {
        let l = &self.layout;
        self.remote
            .run(
                "mkdir",
                &["-p".into(), "--".into(), l.outputs(id), l.ground_truth(id)],
            )
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl Transport for SshTar {
    fn method(&self) -> &'static str {
        "tar-over-ssh"
    }

    async fn upload(&self, id: &str, inputs: &Path, meter: Arc<Meter>) -> Result<TransferReport> {
        let l = &self.layout;
        let report = upload::upload_metered(&self.remote, inputs, &l.inputs(id), meter).await?;
        self.make_output_dirs(id).await?;
        Ok(report)
    }

    fn streams(&self) -> bool {
        true
    }

    async fn upload_streamed(
        &self,
        id: &str,
        inputs: &Path,
        names: std::sync::mpsc::Receiver<String>,
        meter: Arc<Meter>,
    ) -> Result<upload::Streamed> {
        upload::upload_streamed(&self.remote, inputs, names, &self.layout.inputs(id), meter).await
    }

    async fn confirm_streamed(
        &self,
        id: &str,
        inputs: &Path,
        sent: &upload::Streamed,
    ) -> Result<Option<TransferReport>> {
        let stands =
            upload::confirm_streamed(&self.remote, inputs, &self.layout.inputs(id), sent).await?;
        if stands.is_some() {
            self.make_output_dirs(id).await?;
        }
        Ok(stands)
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
