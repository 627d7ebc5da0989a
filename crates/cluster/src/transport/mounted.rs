//! The mounted transport: `slurm_data_path` is a folder on this host, so a
//! verified local copy replaces the network ([`crate::transfer::local`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use stage_common::meter::Meter;

use super::Transport;
use crate::blocking::blocking;
use crate::error::{ClusterError, Result};
use crate::layout::Layout;
use crate::transfer::{OutputLimits, TransferReport, local};

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

    async fn upload(&self, id: &str, inputs: &Path, meter: Arc<Meter>) -> Result<TransferReport> {
        let (job, inputs) = (self.job_dir(id), inputs.to_path_buf());
        blocking("the copy to the data path", move || {
            for d in ["data/out", "data/gt"] {
                let dir = job.join(d);
                std::fs::create_dir_all(&dir).map_err(|e| ClusterError::io(&dir, e))?;
            }
            local::copy_tree(&inputs, &job.join("data/in"), &meter)
        })
        .await
    }

    async fn download(
        &self,
        id: &str,
        target: &Path,
        limits: &OutputLimits,
        meter: Arc<Meter>,
    ) -> Result<TransferReport> {
        let (from, to) = (self.job_dir(id).join("data/out"), target.to_path_buf());
        let limits = *limits;
        blocking("the copy from the data path", move || {
            let empty = std::fs::read_dir(&from)
                .map_err(|e| ClusterError::io(&from, e))?
                .next()
                .is_none();
            if empty {
                return Err(ClusterError::EmptyOutput(from.display().to_string()));
            }
            let files = crate::transfer::listing::local_files(&from)?;
            limits.check(
                &from.display().to_string(),
                files.len() as u64,
                files.iter().map(|(_, b)| b).sum(),
            )?;
            refuse_hard_links(&from, &files)?;
            local::copy_tree(&from, &to, &meter)
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

/// Refuses outputs that are hard links to files outside the job's folder. A copy makes each
/// one a file of its own, so the check on the copy (`stage-results`' safety scan) could no
/// longer see that the job linked a file it does not own (another user's data, a secret)
/// into its outputs; over SSH, tar carries the link and that scan refuses it. A link between
/// two names inside the job's folder (an output sharing an input's unchanged file) is the
/// job's own data and is kept. Symbolic links and special files are refused by the listing.
fn refuse_hard_links(outputs: &Path, files: &[(String, u64)]) -> Result<()> {
    use std::collections::HashMap;
    use std::os::unix::fs::MetadataExt as _;
    let inode = |path: &Path| {
        std::fs::symlink_metadata(path)
            .map(|m| ((m.dev(), m.ino()), m.nlink()))
            .map_err(|e| ClusterError::io(path, e))
    };
    let mut linked: Vec<(String, (u64, u64), u64)> = Vec::new();
    for (rel, _) in files {
        let (key, nlink) = inode(&outputs.join(rel))?;
        if nlink > 1 {
            linked.push((rel.clone(), key, nlink));
        }
    }
    if linked.is_empty() {
        return Ok(());
    }
    // every name of each linked file that lies inside the job's folder (`<job>/data/out/..`)
    let job = outputs.parent().and_then(Path::parent).unwrap_or(outputs);
    let mut names: HashMap<(u64, u64), u64> = HashMap::new();
    for (rel, _) in crate::transfer::listing::local_files(job)? {
        let (key, _) = inode(&job.join(&rel))?;
        *names.entry(key).or_default() += 1;
    }
    for (rel, key, nlink) in linked {
        if names.get(&key).copied().unwrap_or(0) < nlink {
            return Err(ClusterError::Invalid(format!(
                "the job's output is refused: {rel}: is a hard link to a file outside the job's folder ({nlink} names for one file); outputs must be files of their own"
            )));
        }
    }
    Ok(())
}
