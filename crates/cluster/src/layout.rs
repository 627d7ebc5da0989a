//! Where things live on the cluster (docs/contracts.md#the-job), from `[SLURM]` of
//! slurm-config.ini. Relative paths are relative to the Slurm user's home,
//! which is where every SSH command starts.
//!
//! ```text
//! <slurm_data_path>/biomero_<id>/data/in/     staged inputs
//! <slurm_data_path>/biomero_<id>/data/out/    the workflow writes here
//! <slurm_data_path>/biomero_<id>/data/gt/     ground truth (usually empty)
//! <slurm_images_path>/<k>/<image>_<version>.sif
//! <slurm_script_path>/<job script>
//! ~/omero-<job id>.log                          the job's log (sbatch --output=omero-%j.log)
//! ```

use stage_config::slurm::SlurmSettings;

use crate::error::{ClusterError, Result};

/// The cluster's folders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `slurm_data_path`.
    pub data_path: String,
    /// `slurm_images_path`.
    pub images_path: String,
    /// `slurm_converters_path`.
    pub converters_path: String,
    /// `slurm_script_path`.
    pub script_path: String,
    /// `slurm_data_bind_path` (exported as `APPTAINER_BINDPATH`).
    pub bind_path: Option<String>,
}

/// Refuses a path that cannot be passed around safely (empty, control characters).
pub fn check_path(what: &str, p: &str) -> Result<()> {
    if p.trim().is_empty() || p.chars().any(char::is_control) {
        return Err(ClusterError::Invalid(format!(
            "{what} `{}` is empty or contains control characters",
            p.escape_debug()
        )));
    }
    Ok(())
}

/// `name` with everything but letters, digits, `-`, `_` and `.` replaced by `_`
/// (for job names and the comments of generated scripts).
pub fn safe_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Refuses a submission id that cannot be a folder name.
pub fn check_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        || id.starts_with('.')
    {
        return Err(ClusterError::Invalid(format!(
            "submission id `{}` cannot name a folder on the cluster",
            id.escape_debug()
        )));
    }
    Ok(())
}

impl Layout {
    /// The layout of `[SLURM]`.
    pub fn from_slurm(s: &SlurmSettings) -> Result<Self> {
        let l = Layout {
            data_path: s.data_path.value.trim_end_matches('/').to_owned(),
            images_path: s.images_path.value.trim_end_matches('/').to_owned(),
            converters_path: s.converters_path.value.trim_end_matches('/').to_owned(),
            script_path: s.script_path.value.trim_end_matches('/').to_owned(),
            bind_path: s.data_bind_path.as_ref().map(|b| b.value.clone()),
        };
        for (what, p) in [
            ("slurm_data_path", &l.data_path),
            ("slurm_images_path", &l.images_path),
            ("slurm_converters_path", &l.converters_path),
            ("slurm_script_path", &l.script_path),
        ] {
            check_path(what, p)?;
        }
        Ok(l)
    }

    /// `<data>/biomero_<id>`.
    pub fn job_dir(&self, id: &str) -> String {
        format!("{}/biomero_{id}", self.data_path)
    }

    /// `<data>/biomero_<id>/data/in`.
    pub fn inputs(&self, id: &str) -> String {
        format!("{}/data/in", self.job_dir(id))
    }

    /// `<data>/biomero_<id>/data/out`.
    pub fn outputs(&self, id: &str) -> String {
        format!("{}/data/out", self.job_dir(id))
    }

    /// `<data>/biomero_<id>/data/gt`.
    pub fn ground_truth(&self, id: &str) -> String {
        format!("{}/data/gt", self.job_dir(id))
    }

    /// `<images>/<folder>`.
    pub fn image_dir(&self, folder: &str) -> String {
        format!("{}/{folder}", self.images_path)
    }

    /// `<scripts>/<job script>`.
    pub fn script(&self, job_script: &str) -> String {
        format!("{}/{job_script}", self.script_path)
    }

    /// The job folder of submission `id` on a host that mounts `slurm_data_path` at `mount`.
    pub fn local_job_dir(&self, mount: &std::path::Path, id: &str) -> std::path::PathBuf {
        let rel = self.job_dir(id);
        let rel = rel
            .strip_prefix(&self.data_path)
            .unwrap_or(&rel)
            .trim_start_matches('/');
        mount.join(rel)
    }

    /// The job's log, relative to the home directory sbatch runs in.
    pub fn job_log(job_id: u64) -> String {
        format!("omero-{job_id}.log")
    }
}
