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
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use stage_cluster::transfer::{OutputLimits, TransferReport};
use stage_common::meter::Meter;
use stage_results::keep::{self, KeepRequest, MANIFEST, ResultManifest};
use stage_results::safety::Limits;
use stage_source::Plan;
use stage_source::stage::INPUTS_DIR;
use stage_store::Submission;

use super::super::progress_events::Reporter;
use super::super::record::StepRecord;
use super::super::{FailureKind, Step, StepContext, StepOutcome};
use super::{cluster_outcome, results_outcome, unless_cancelled};
use crate::intake::SubmissionDoc;
use crate::metrics::count_bytes;

/// Where the outputs of submission `id` are downloaded locally.
pub fn outputs_dir(staging: &Path, id: &str) -> PathBuf {
    staging.join(id).join("data").join("out")
}

/// Where a submission's results are kept, and the folder they may never leave.
#[derive(Debug, Clone)]
pub(crate) struct ResultsFolder {
    /// `results_dir`: the folder holding the group folders.
    pub(crate) root: PathBuf,
    /// `<root>/<group folder>/.analyzed/<id>`.
    pub(crate) analyzed: PathBuf,
}

/// `<results_dir>/<group folder>/.analyzed/<id>`: the group folder from the
/// group mappings, or the group's name when no mappings file is configured. Refused when
/// it would leave `results_dir` (an absolute or `..` mapping, a folder on the way that is
/// a symbolic link).
pub(crate) fn analyzed_dir(
    ctx: &StepContext,
    doc: &SubmissionDoc,
    id: &str,
) -> Result<ResultsFolder, StepOutcome> {
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
                return Err(StepOutcome::failed(
                    FailureKind::Results,
                    format!(
                        "OMERO group `{group}` has no folder in the group mappings: its results cannot be kept; map the group in the Importer Admin tab (biomero-config.json)"
                    ),
                ));
            }
        },
        Ok(None) => {
            let p = PathBuf::from(group);
            if p.components().count() != 1
                || !matches!(p.components().next(), Some(Component::Normal(_)))
            {
                return Err(StepOutcome::failed(
                    FailureKind::Results,
                    format!(
                        "OMERO group name `{group}` cannot be a folder name; configure group_mappings_file"
                    ),
                ));
            }
            p
        }
        Err(e) => return Err(super::source_outcome(&e)),
    };
    let analyzed = base.join(folder).join(".analyzed").join(id);
    stage_results::safety::confined_destination(&base, &analyzed)
        .map_err(|e| results_outcome(&e))?;
    Ok(ResultsFolder {
        root: base,
        analyzed,
    })
}

/// What the collect step keeps: where the results were kept and what they hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectRecord {
    /// `<results_dir>/<group folder>/.analyzed/<id>/<stamp>`.
    pub kept: PathBuf,
    /// The result manifest in it (what the import step orders).
    pub manifest: PathBuf,
    /// Files kept.
    pub files: usize,
    /// Bytes kept.
    pub bytes: u64,
    /// HCS plates among them.
    pub plates: usize,
    /// OME-Zarr images.
    pub zarr_images: usize,
    /// Image files (TIFF, …).
    pub image_files: usize,
    /// Other files, attached rather than imported.
    pub attachments: usize,
    /// Label images.
    pub labels: usize,
    /// What the checks noted.
    pub notes: Vec<String>,
    /// What the download did (none when a rerun found the results kept).
    pub transfer: Option<TransferReport>,
    /// Why the submission ends here, when `import_results` is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl StepRecord for CollectRecord {
    const STEP: Step = Step::Collect;
}

impl CollectRecord {
    /// The record of a kept manifest.
    fn of(m: &ResultManifest, transfer: Option<TransferReport>) -> Self {
        use stage_results::classify::ItemKind as K;
        let count = |k| m.items_of(k).count();
        CollectRecord {
            kept: m.dir.clone(),
            manifest: m.dir.join(MANIFEST),
            files: m.files.len(),
            bytes: m.bytes,
            plates: count(K::Plate),
            zarr_images: count(K::ZarrImage),
            image_files: count(K::ImageFile),
            attachments: count(K::Attachment),
            labels: m.items.iter().map(|i| i.labels.len()).sum(),
            notes: m.notes.clone(),
            transfer,
            note: None,
        }
    }
}

/// Runs the step; with `import_results` off the submission ends here, its
/// results kept and the job's folders removed as after an import.
pub async fn run(ctx: &StepContext, s: &Submission) -> StepOutcome {
    let record = match collect(ctx, s).await {
        Ok(r) => r,
        Err(o) => return o,
    };
    let import = ctx
        .runtime
        .config
        .current()
        .settings
        .settings
        .import_results;
    if import {
        return record.done(false);
    }
    if let Ok(doc) = super::document(s) {
        super::import::cleanup(ctx, s, &doc).await;
    }
    tracing::info!(kept = %record.kept.display(), "results kept; import_results is off");
    CollectRecord {
        note: Some("import_results is off: the results are kept, not imported".into()),
        ..record
    }
    .done(true)
}

async fn collect(ctx: &StepContext, s: &Submission) -> Result<CollectRecord, StepOutcome> {
    let doc = super::document(s)?;
    let ResultsFolder { root, analyzed } = analyzed_dir(ctx, &doc, &s.id)?;
    // a rerun after the result was kept: nothing to download again
    match keep::find_kept(&analyzed, &s.id) {
        Ok(Some(m)) => return Ok(CollectRecord::of(&m, None)),
        Ok(None) => {}
        Err(e) => return Err(results_outcome(&e)),
    }
    let plan = Plan::read(s)?;
    let cluster = super::cluster(ctx)?;
    let config = ctx.runtime.config.current();
    let settings = &config.settings.settings;
    let target = outputs_dir(&settings.staging_dir(), &s.id);
    let far_limits = OutputLimits {
        max_bytes: settings.max_output_bytes,
        max_files: settings.max_output_files,
    };
    let meter = Arc::new(Meter::new());
    let reporter = Reporter::start(&ctx.runtime.store, &s.id, Step::Collect, meter.clone());
    let fetched = unless_cancelled(
        ctx,
        cluster
            .transport
            .download(&s.id, &target, &far_limits, meter),
    )
    .await;
    reporter.stop().await;
    let report = fetched.map_err(|e| {
        if !e.is_transient() {
            discard_download(&target);
        }
        cluster_outcome(&e).with_detail(json!({ "outputs": cluster.layout.outputs(&s.id) }))
    })?;
    count_bytes(&ctx.runtime.metrics, "downloaded", report.bytes_sent);
    tracing::info!(
        files = report.files,
        bytes = report.bytes,
        seconds = report.seconds,
        method = %report.method,
        "outputs downloaded"
    );
    let staged = settings.staging_dir().join(&s.id).join(INPUTS_DIR);
    let staged_inputs: Vec<String> = plan.outputs().map(str::to_owned).collect();
    // an OMERO image's original, for BIOMERO's rename variables, is its own name
    let original_names = plan
        .images
        .iter()
        .filter(|i| i.origin.image_id.is_some())
        .map(|i| {
            (
                i.output.clone(),
                stage_ngff::names::verbatim_stem(&i.name, &i.output).0,
            )
        })
        .chain(
            plan.plates
                .iter()
                .filter(|p| p.origin.plate_id.is_some())
                .map(|p| (p.output.clone(), p.name.clone())),
        )
        .collect();
    let expect_images = !plan.plates.is_empty()
        || plan
            .images
            .iter()
            .any(|i| i.format != stage_source::plan::OutputFormat::Tiff);
    let limits = Limits {
        max_bytes: settings.max_output_bytes,
        max_files: settings.max_output_files,
    };
    let omero_ngff = settings.omero_ngff_version;
    let (id, workflow) = (s.id.clone(), doc.workflow.clone());
    let rename = doc.options.rename.clone();
    let target_for_cleanup = target.clone();
    let kept = tokio::task::spawn_blocking(move || {
        keep::keep(&KeepRequest {
            root: &root,
            outputs: &target,
            analyzed: &analyzed,
            submission: &id,
            workflow: &workflow,
            staged: &staged,
            staged_inputs,
            original_names,
            limits,
            omero_ngff,
            expect_images,
            rename,
        })
    })
    .await;
    match kept {
        Ok(Ok(m)) => {
            for n in &m.notes {
                tracing::warn!(note = %n, "results");
            }
            tracing::info!(dir = %m.dir.display(), files = m.files.len(), "results kept");
            Ok(CollectRecord::of(&m, Some(report)))
        }
        Ok(Err(e)) => {
            // a refused output is never kept, and its download does not stay in staging
            if !e.is_transient() {
                discard_download(&target_for_cleanup);
            }
            Err(results_outcome(&e))
        }
        Err(e) => Err(StepOutcome::Transient {
            error: format!("keeping the results stopped: {e}"),
        }),
    }
}

/// Removes the download of a refused output from staging (nothing of it is kept).
fn discard_download(target: &std::path::Path) {
    if let Err(e) = std::fs::remove_dir_all(target)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %target.display(), error = %e, "cannot remove a refused download");
    }
}
