//! The `upload` step: the staged inputs to `<slurm_data_path>/biomero_<id>/data/in`
//! on the cluster (tar over one SSH channel, resumable and verified, or a
//! local copy when this host mounts the data path), with `data/out` and
//! `data/gt` created beside them. Prep-only submissions end here.

use std::path::PathBuf;

use serde_json::json;
use stage_cluster::ClusterError;
use stage_cluster::layout::check_id;
use stage_cluster::transfer::{TransferReport, local, upload};
use stage_store::Submission;

use super::super::{StepContext, StepOutcome};
use super::{cluster_outcome, unless_cancelled};
use crate::metrics::DirectionLabel;

/// Runs the step.
pub async fn run(ctx: &StepContext, s: &Submission) -> StepOutcome {
    if let Err(e) = check_id(&s.id) {
        return cluster_outcome(&e);
    }
    let inputs = match super::recorded(s, "stage", "inputs") {
        Ok(v) => PathBuf::from(v.as_str().unwrap_or_default()),
        Err(o) => return o,
    };
    let doc = match super::document(s) {
        Ok(d) => d,
        Err(o) => return o,
    };
    let cluster = match super::cluster(ctx) {
        Ok(c) => c,
        Err(o) => return o,
    };
    let layout = &cluster.layout;
    let result: Result<(TransferReport, String), ClusterError> =
        if let Some(job) = cluster.local_job_dir(&s.id) {
            let target = job.join("data/in");
            let out = tokio::task::spawn_blocking(move || {
                for d in ["data/out", "data/gt"] {
                    std::fs::create_dir_all(job.join(d)).map_err(|e| ClusterError::Io {
                        path: job.join(d),
                        source: e,
                    })?;
                }
                local::copy_tree(&inputs, &target)
            });
            match unless_cancelled(ctx, async {
                out.await
                    .map_err(|e| ClusterError::Invalid(format!("the copy task failed: {e}")))?
            })
            .await
            {
                Ok(r) => Ok((r, layout.job_dir(&s.id))),
                Err(e) => Err(e),
            }
        } else {
            let remote = cluster.remote.clone();
            let dir = layout.inputs(&s.id);
            unless_cancelled(ctx, async {
                let report = upload::upload(&remote, &inputs, &dir).await?;
                remote
                    .run(
                        "mkdir",
                        &[
                            "-p".into(),
                            "--".into(),
                            layout.outputs(&s.id),
                            layout.ground_truth(&s.id),
                        ],
                    )
                    .await?;
                Ok((report, layout.job_dir(&s.id)))
            })
            .await
        };
    match result {
        Ok((report, job_dir)) => {
            ctx.runtime
                .metrics
                .bytes
                .get_or_create(&DirectionLabel {
                    direction: "uploaded".into(),
                })
                .inc_by(report.bytes_sent);
            tracing::info!(
                files = report.files,
                sent = report.files_sent,
                bytes = report.bytes_sent,
                seconds = report.seconds,
                method = %report.method,
                "uploaded"
            );
            let settings = &ctx.runtime.config.current().settings.settings;
            let prep_only = doc.options.prep_only.unwrap_or(settings.prep_only);
            StepOutcome::Done {
                result: json!({
                    "host": cluster.remote.host(),
                    "job_dir": job_dir,
                    "inputs": layout.inputs(&s.id),
                    "transfer": report,
                    "prep_only": prep_only,
                }),
                last: prep_only,
            }
        }
        Err(e) => cluster_outcome(&e),
    }
}
