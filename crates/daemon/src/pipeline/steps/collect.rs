//! The `collect` step: the job's `data/out` back into
//! `<staging_dir>/<id>/data/out` (tar over one SSH channel, resumable and
//! verified, or a local copy when this host mounts the data path), then
//! checked and kept in permanent storage by `stage-results`:
//! `<results_dir>/<group folder>/.analyzed/<id>/<YYYYMMDD_HHMMSS>/` with a
//! manifest. An empty `data/out`, a Zarr workflow that returned no image, or
//! an unsafe tree (symlinks, hard links, devices, FIFOs, over the limits)
//! fails the submission with a message saying so. A rerun after a crash
//! finds the kept result and does not download again.

use std::path::{Component, Path, PathBuf};

use serde_json::{Value, json};
use stage_cluster::ClusterError;
use stage_cluster::transfer::{TransferReport, download, local};
use stage_results::keep::{self, KeepRequest, MANIFEST, ResultManifest};
use stage_results::safety::Limits;
use stage_source::Plan;
use stage_source::stage::INPUTS_DIR;
use stage_store::Submission;

use super::super::{StepContext, StepOutcome};
use super::{cluster_outcome, failed, results_outcome, unless_cancelled};
use crate::intake::SubmissionDoc;
use crate::metrics::DirectionLabel;

/// Where the outputs of submission `id` are downloaded locally.
pub fn outputs_dir(staging: &Path, id: &str) -> PathBuf {
    staging.join(id).join("data").join("out")
}

/// `<results_dir>/<group folder>/.analyzed/<id>`: the group folder from the
/// group mappings, or the group's name when no mappings file is configured.
pub(crate) fn analyzed_dir(
    ctx: &StepContext,
    doc: &SubmissionDoc,
    id: &str,
) -> Result<PathBuf, StepOutcome> {
    let config = ctx.runtime.config.current();
    let settings = &config.settings.settings;
    let Some(base) = settings.results_dir() else {
        return Err(StepOutcome::Waiting {
            capability:
                "no results_dir (and no data_roots) is set: results have nowhere to be kept".into(),
        });
    };
    let group = &doc.user.group;
    let folder = match ctx.runtime.sources.groups(settings).current() {
        Ok(Some(m)) => match m.folder(group) {
            Some(g) => g.folder.clone(),
            None => {
                return Err(failed(format!(
                    "OMERO group `{group}` has no folder in the group mappings: its results cannot be kept; map the group in the Importer Admin tab (biomero-config.json)"
                )));
            }
        },
        Ok(None) => {
            let p = PathBuf::from(group);
            if p.components().count() != 1
                || !matches!(p.components().next(), Some(Component::Normal(_)))
            {
                return Err(failed(format!(
                    "OMERO group name `{group}` cannot be a folder name; configure group_mappings_file"
                )));
            }
            p
        }
        Err(e) => return Err(super::source_outcome(&e)),
    };
    Ok(base.join(folder).join(".analyzed").join(id))
}

/// The recorded result of a kept manifest.
fn done(m: &ResultManifest, transfer: &Value) -> StepOutcome {
    use stage_results::classify::ItemKind as K;
    let count = |k| m.items_of(k).count();
    StepOutcome::Done {
        result: json!({
            "kept": m.dir,
            "manifest": m.dir.join(MANIFEST),
            "files": m.files.len(),
            "bytes": m.bytes,
            "plates": count(K::Plate),
            "zarr_images": count(K::ZarrImage),
            "image_files": count(K::ImageFile),
            "attachments": count(K::Attachment),
            "labels": m.items.iter().map(|i| i.labels.len()).sum::<usize>(),
            "notes": m.notes,
            "transfer": transfer,
        }),
        last: false,
    }
}

/// Runs the step; with `import_results` off the submission ends here, its
/// results kept and the job's folders removed as after an import.
pub async fn run(ctx: &StepContext, s: &Submission) -> StepOutcome {
    let outcome = collect(ctx, s).await;
    let import = ctx
        .runtime
        .config
        .current()
        .settings
        .settings
        .import_results;
    match outcome {
        StepOutcome::Done { mut result, .. } if !import => {
            if let Ok(doc) = super::document(s) {
                super::import::cleanup(ctx, s, &doc).await;
            }
            result["note"] = json!("import_results is off: the results are kept, not imported");
            tracing::info!(kept = %result["kept"], "results kept; import_results is off");
            StepOutcome::Done { result, last: true }
        }
        other => other,
    }
}

async fn collect(ctx: &StepContext, s: &Submission) -> StepOutcome {
    let doc = match super::document(s) {
        Ok(d) => d,
        Err(o) => return o,
    };
    let analyzed = match analyzed_dir(ctx, &doc, &s.id) {
        Ok(d) => d,
        Err(o) => return o,
    };
    // a rerun after the result was kept: nothing to download again
    match keep::find_kept(&analyzed, &s.id) {
        Ok(Some(m)) => return done(&m, &Value::Null),
        Ok(None) => {}
        Err(e) => return results_outcome(&e),
    }
    let cluster = match super::cluster(ctx) {
        Ok(c) => c,
        Err(o) => return o,
    };
    let config = ctx.runtime.config.current();
    let settings = &config.settings.settings;
    let target = outputs_dir(&settings.staging_dir(), &s.id);
    let layout = &cluster.layout;
    let remote_out = layout.outputs(&s.id);
    let result: Result<TransferReport, ClusterError> =
        if let Some(job) = cluster.local_job_dir(&s.id) {
            let from = job.join("data/out");
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
        "outputs downloaded"
    );
    let plan: Option<Plan> = s
        .data
        .get("plan")
        .and_then(|p| serde_json::from_value(p.clone()).ok());
    let staged = settings.staging_dir().join(&s.id).join(INPUTS_DIR);
    let staged_inputs: Vec<String> = plan
        .as_ref()
        .map(|p| p.outputs().map(str::to_owned).collect())
        .unwrap_or_default();
    let expect_images = plan.as_ref().is_some_and(|p| {
        !p.plates.is_empty()
            || p.images
                .iter()
                .any(|i| i.format != stage_source::plan::OutputFormat::Tiff)
    });
    let limits = Limits {
        max_bytes: settings.max_output_bytes,
        max_files: settings.max_output_files,
    };
    let omero_ngff = match settings.omero_ngff_version {
        stage_config::settings::NgffVersion::V04 => stage_ngff::NgffVersion::V04,
        stage_config::settings::NgffVersion::V05 => stage_ngff::NgffVersion::V05,
    };
    let (id, workflow) = (s.id.clone(), doc.workflow.clone());
    let kept = tokio::task::spawn_blocking(move || {
        keep::keep(&KeepRequest {
            outputs: &target,
            analyzed: &analyzed,
            submission: &id,
            workflow: &workflow,
            staged: &staged,
            staged_inputs,
            limits,
            omero_ngff,
            expect_images,
        })
    })
    .await;
    match kept {
        Ok(Ok(m)) => {
            for n in &m.notes {
                tracing::warn!(note = %n, "results");
            }
            tracing::info!(dir = %m.dir.display(), files = m.files.len(), "results kept");
            done(&m, &serde_json::to_value(&report).unwrap_or(Value::Null))
        }
        Ok(Err(e)) => results_outcome(&e),
        Err(e) => StepOutcome::Transient {
            error: format!("keeping the results stopped: {e}"),
        },
    }
}
