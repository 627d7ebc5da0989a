//! The `submit` step: `sbatch` the workflow's job script with BIOMERO's job
//! environment (docs/contracts.md, "The job") and the SBATCH parameters in their precedence
//! order, exactly once.
//!
//! The job is named after the submission; before `sbatch` runs, Slurm is asked
//! for a job of that name, so a daemon killed between `sbatch` and recording
//! the job id finds its job after restart instead of submitting a second one.
//! The job id (and the environment it got) is this step's recorded result.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use stage_cluster::Layout;
use stage_cluster::slurm::submit::JobSpec;
use stage_config::registry::ResolvedWorkflow;
use stage_store::Submission;

use super::super::record::StepRecord;
use super::super::{FailureKind, Step, StepContext, StepOutcome};
use super::{cluster_outcome, unless_cancelled};
use crate::cluster::workflow_setup;
use crate::intake;

/// A parameter value as the job sees it (Python's `str()`, as BIOMERO passes it).
fn env_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The job name: `omero-job-<workflow>-<submission id>-<when it was received>`; the time
/// keeps it unique when an id comes back (another queue, a reset database).
pub fn job_name(workflow: &str, id: &str, created: chrono::DateTime<chrono::Utc>) -> String {
    let key = stage_cluster::layout::safe_name(workflow);
    format!("omero-job-{key}-{id}-{}", created.format("%Y%m%d%H%M%S%3f"))
}

/// The job's environment (docs/contracts.md, "The job"), running the container `version`
/// of `wf` (the configured one, or the one the run chose among those on the cluster).
pub fn environment(
    layout: &Layout,
    wf: &ResolvedWorkflow,
    version: &str,
    id: &str,
    parameters: &serde_json::Map<String, Value>,
    files: &[&str],
    gpu_flag: bool,
) -> Result<Vec<(String, String)>, stage_cluster::ClusterError> {
    let setup = workflow_setup(wf)?;
    let mut env = vec![
        ("DATA_PATH".to_owned(), layout.job_dir(id)),
        ("IMAGE_PATH".to_owned(), layout.image_dir(&wf.folder)),
        ("IMAGE_VERSION".to_owned(), version.to_owned()),
        (
            "SINGULARITY_IMAGE".to_owned(),
            stage_cluster::setup::sif_name(&setup.image_name(), version),
        ),
        ("SCRIPT_PATH".to_owned(), layout.script_path.clone()),
    ];
    if let Some(b) = &layout.bind_path {
        env.push(("APPTAINER_BINDPATH".to_owned(), b.clone()));
    }
    if gpu_flag {
        env.push(("GPU_FLAG".to_owned(), "--nv".to_owned()));
    }
    for p in wf.descriptor.iter().flat_map(|d| &d.parameters) {
        let value = parameters.get(&p.id).or(p.default.as_ref());
        if let Some(v) = value {
            env.push((p.env_name(), env_value(v)));
        }
    }
    // each attached file input: the folder its files were staged in, as BIOMERO passes it
    for f in wf.descriptor.iter().flat_map(|d| &d.file_inputs) {
        if files.iter().any(|id| *id == f.id) {
            env.push((f.env_name(), format!("{}/{}", layout.inputs(id), f.id)));
        }
    }
    Ok(env)
}

/// What the submit step keeps: the job, how it was started, where its log is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmitRecord {
    /// The job id (Slurm's, or the local job's process id).
    pub job_id: u64,
    /// Found already started (a daemon restarted between start and record).
    pub adopted: bool,
    /// The job name.
    pub job_name: String,
    /// The job script.
    pub script: String,
    /// sbatch options, in precedence order.
    pub sbatch: Vec<String>,
    /// The job's environment.
    pub env: BTreeMap<String, String>,
    /// The environment file passed as `$1`, with `env_file_submission`.
    pub env_file: Option<String>,
    /// The job's log.
    pub log: String,
    /// What ran it (`slurm`, `local`).
    pub executor: String,
    /// When it was submitted (a job the scheduler forgot is given up 15 minutes after).
    pub submitted_at: chrono::DateTime<chrono::Utc>,
}

impl StepRecord for SubmitRecord {
    const STEP: Step = Step::Submit;
}

/// Runs the step.
pub async fn run(ctx: &StepContext, s: &Submission) -> StepOutcome {
    let config = ctx.runtime.config.current();
    let doc = match super::document(s) {
        Ok(d) => d,
        Err(o) => return o,
    };
    let accepted = match intake::validate(doc, &config) {
        Ok(a) => a,
        Err(e) => {
            return StepOutcome::failed(FailureKind::Invalid, e.to_string())
                .with_detail(json!({ "generation": config.generation }));
        }
    };
    let Some(wf) = config.registry.get(&s.workflow) else {
        return StepOutcome::failed(
            FailureKind::Invalid,
            format!("workflow `{}` is no longer configured", s.workflow),
        );
    };
    let cluster = match super::cluster(ctx) {
        Ok(c) => c,
        Err(o) => return o,
    };
    let layout = &cluster.layout;
    let slurm = &config.slurm.slurm;
    let env = match environment(
        layout,
        wf,
        crate::versions::chosen(&accepted.doc, wf),
        &s.id,
        &accepted.doc.parameters,
        &accepted
            .doc
            .files
            .iter()
            .filter(|(_, f)| !f.is_empty())
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>(),
        wf.use_gpu && slurm.inject_gpu_flag.value,
    ) {
        Ok(e) => e,
        Err(e) => return cluster_outcome(&e),
    };
    let spec = JobSpec {
        name: job_name(&wf.key, &s.id, s.created_at),
        script: layout.script(&wf.job_script),
        sbatch_args: wf.sbatch_args(),
        env,
        env_file: slurm
            .env_file_submission
            .value
            .then(|| format!("{}/job.env", layout.job_dir(&s.id))),
    };
    // a job of this submission cannot be older than the submission (minutes of clock skew allowed)
    let since = (s.created_at - chrono::Duration::minutes(10))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let executor = &cluster.executor;
    let job = match unless_cancelled(ctx, executor.submit(&s.id, &spec, &since)).await {
        Ok(j) => j,
        Err(e) => return cluster_outcome(&e),
    };
    tracing::info!(
        job_id = job.job_id,
        adopted = job.adopted,
        executor = executor.name(),
        "job submitted"
    );
    SubmitRecord {
        job_id: job.job_id,
        adopted: job.adopted,
        log: executor.log_path(&s.id, job.job_id),
        executor: executor.name().to_owned(),
        job_name: spec.name,
        script: spec.script,
        sbatch: spec.sbatch_args,
        env: spec.env.into_iter().collect(),
        env_file: spec.env_file,
        submitted_at: chrono::Utc::now(),
    }
    .done(false)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use stage_config::descriptor::FileInput;

    use super::*;

    #[tokio::test]
    async fn an_attached_file_input_reaches_the_job_as_its_folder() {
        let d = tempfile::tempdir().unwrap();
        let config = crate::test_site::demo_snapshot(d.path()).await;
        let layout = Layout::from_slurm(&config.slurm.slurm).unwrap();
        let mut wf = config.registry.get("threshold").unwrap().clone();
        let descriptor = wf.descriptor.as_mut().unwrap();
        for id in ["weights", "unused"] {
            descriptor.file_inputs.push(FileInput {
                id: id.into(),
                name: id.into(),
                description: String::new(),
                formats: vec![],
                optional: true,
            });
        }
        let env = environment(
            &layout,
            &wf,
            &wf.version,
            "s1",
            &serde_json::Map::new(),
            &["weights"],
            false,
        )
        .unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(
            get("WEIGHTS"),
            Some(format!("{}/weights", layout.inputs("s1")))
        );
        assert_eq!(get("UNUSED"), None, "an input without files sets nothing");
    }
}
