//! The `collect` step: the job's `data/out` back into
//! `<staging_dir>/<id>/data/out` (tar over one SSH channel, resumable and
//! verified, or a local copy when this host mounts the data path). An empty
//! `data/out` fails the submission: a workflow that succeeds writes results.
//! Afterwards `biomero_<id>` is removed from the cluster unless the
//! submission or the settings keep it.

use std::path::PathBuf;

use serde_json::json;
use stage_cluster::ClusterError;
use stage_cluster::transfer::{TransferReport, download, local};
use stage_store::Submission;

use super::super::{StepContext, StepOutcome};
use super::{cluster_outcome, unless_cancelled};
use crate::metrics::DirectionLabel;

/// Where the outputs of submission `id` are kept locally.
pub fn outputs_dir(staging: &std::path::Path, id: &str) -> PathBuf {
    staging.join(id).join("data").join("out")
}

/// Runs the step.
pub async fn run(ctx: &StepContext, s: &Submission) -> StepOutcome {
    let doc = match super::document(s) {
        Ok(d) => d,
        Err(o) => return o,
    };
    let cluster = match super::cluster(ctx) {
        Ok(c) => c,
        Err(o) => return o,
    };
    let config = ctx.runtime.config.current();
    let settings = &config.settings.settings;
    let target = outputs_dir(&settings.staging_dir(), &s.id);
    let layout = &cluster.layout;
    let remote_out = layout.outputs(&s.id);
    let result: Result<TransferReport, ClusterError> = if let Some(mount) = &cluster.local_data_path
    {
        let from = super::upload::local_job_dir(mount, layout, &s.id).join("data/out");
        let to = target.clone();
        let task = tokio::task::spawn_blocking(move || {
            let empty = std::fs::read_dir(&from)
                .map_err(|e| ClusterError::Io {
                    path: from.clone(),
                    source: e,
                })?
                .next()
                .is_none();
            if empty {
                return Err(ClusterError::EmptyOutput(from.display().to_string()));
            }
            local::copy_tree(&from, &to)
        });
        unless_cancelled(ctx, async {
            task.await
                .map_err(|e| ClusterError::Invalid(format!("the copy task failed: {e}")))?
        })
        .await
    } else {
        unless_cancelled(
            ctx,
            download::download(&cluster.remote, &remote_out, &target),
        )
        .await
    };
    let report = match result {
        Ok(r) => r,
        Err(e @ ClusterError::EmptyOutput(_)) => {
            return StepOutcome::Failed {
                reason: e.to_string(),
                detail: json!({ "outputs": remote_out }),
            };
        }
        Err(e) => return cluster_outcome(&e),
    };
    ctx.runtime
        .metrics
        .bytes
        .get_or_create(&DirectionLabel {
            direction: "downloaded".into(),
        })
        .inc_by(report.bytes_sent);
    tracing::info!(
        files = report.files,
        bytes = report.bytes,
        seconds = report.seconds,
        "outputs collected"
    );
    let keep = doc.options.keep_remote_data || settings.keep_remote_data;
    let mut removed = false;
    if !keep {
        let job_dir = layout.job_dir(&s.id);
        let r = if let Some(mount) = &cluster.local_data_path {
            let dir = super::upload::local_job_dir(mount, layout, &s.id);
            tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
        } else {
            cluster
                .remote
                .run("rm", &["-rf".into(), "--".into(), job_dir.clone()])
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        match r {
            Ok(()) => removed = true,
            // the results are safe here; a leftover folder is only a warning
            Err(e) => {
                tracing::warn!(folder = %job_dir, error = %e, "cannot remove the job folder on the cluster");
            }
        }
    }
    StepOutcome::Done {
        result: json!({
            "outputs": target,
            "transfer": report,
            "remote_removed": removed,
        }),
        last: false,
    }
}
