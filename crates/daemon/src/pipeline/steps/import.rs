//! The `import` step: the kept results handed to BIOMERO.importer.
//!
//! Orders go into the importer's `imports` table (docs/contracts.md#biomeroimporters-orders) — one per
//! result set: plates to a Screen, images to a Dataset, label images instead
//! of what holds them when `import_only_labels` is on — with paths as the
//! importer sees them (`importer_path_map`). Their uuids are derived from the
//! submission and the result, so a rerun never orders twice. The step then
//! looks at the latest row of every order — each `import_poll_secs` at first,
//! less often as the import takes longer, giving its worker back in between —
//! until all are `Import Completed`; an `Import Failed` fails the submission
//! with the importer's description, and so does an order still unfinished
//! after `import_timeout_secs`. After a
//! successful import the job's folder and log on the cluster (unless kept) and
//! the local staging folder are removed.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use stage_results::importer::{self, Order, OrderRules, PathMap};
use stage_results::keep::ResultManifest;
use stage_source::Plan;
use stage_store::Submission;

use super::super::record::StepRecord;
use super::super::{FailureKind, Step, StepContext, StepOutcome};
use super::collect::CollectRecord;
use super::results_outcome;
use super::submit::SubmitRecord;
use crate::intake::{ResultsTarget, SubmissionDoc};

/// One order's latest stage, as the import step last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderStage {
    /// The order's uuid.
    pub uuid: String,
    /// What it imports (`images`, `plates`, `labels`).
    pub set: String,
    /// Files in it.
    pub files: usize,
    /// BIOMERO.importer's stage (`Import Completed`).
    pub stage: String,
}

/// What the import step keeps: the orders placed and how they ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportRecord {
    /// Where the results are kept.
    pub kept: PathBuf,
    /// The orders placed in BIOMERO.importer's table.
    pub orders: Vec<Order>,
    /// Their final stages.
    #[serde(default)]
    pub stages: Vec<OrderStage>,
    /// Why nothing was ordered, when nothing was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// What was attached in OMERO besides the import (BIOMERO's `1)`, `2)`, `5)`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attached: Vec<super::attach::Attached>,
    /// What was asked to be attached and could not be, each saying why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attach_notes: Vec<String>,
}

impl StepRecord for ImportRecord {
    const STEP: Step = Step::Import;
}

fn failed(reason: String) -> StepOutcome {
    StepOutcome::failed(FailureKind::Import, reason)
}

/// The Dataset and Screen results go to: the submission's `results`, else the
/// single Dataset / Screen the inputs came from.
fn destinations(
    doc: &SubmissionDoc,
    plan: Option<&Plan>,
) -> Result<(Option<i64>, Option<i64>), String> {
    match &doc.results {
        Some(ResultsTarget::Existing { kind, id }) => match kind.as_str() {
            "Dataset" => Ok((Some(*id), None)),
            "Screen" => Ok((None, Some(*id))),
            other => Err(format!(
                "results.type `{other}` cannot receive an import; use Dataset or Screen"
            )),
        },
        Some(ResultsTarget::New { new, name }) => Err(format!(
            "results asks for a new {new} `{name}`; BIOMERO.importer imports into an existing Dataset or Screen: create it in OMERO and give its id"
        )),
        None => {
            let unique = |ids: Vec<Option<i64>>| {
                let mut ids: Vec<i64> = ids.into_iter().flatten().collect();
                ids.sort_unstable();
                ids.dedup();
                (ids.len() == 1).then(|| ids[0])
            };
            let Some(plan) = plan else {
                return Ok((None, None));
            };
            Ok((
                unique(plan.images.iter().map(|i| i.origin.dataset_id).collect()),
                unique(plan.plates.iter().map(|p| p.origin.screen_id).collect()),
            ))
        }
    }
}

fn manifest(s: &Submission) -> Result<ResultManifest, StepOutcome> {
    let path = CollectRecord::read(s)?.manifest;
    ResultManifest::read(&path).map_err(|e| failed(e.to_string()))
}

/// Runs the step.
pub async fn run(ctx: &StepContext, s: &Submission) -> StepOutcome {
    let config = ctx.runtime.config.current();
    let settings = &config.settings.settings;
    let m = match manifest(s) {
        Ok(m) => m,
        Err(o) => return o,
    };
    let doc = match super::document(s) {
        Ok(d) => d,
        Err(o) => return o,
    };
    if !settings.importer_enabled {
        return StepOutcome::Waiting {
            capability: format!(
                "importer_enabled is false: the results are kept at {}; enable the BIOMERO.importer integration (importer_enabled, importer_database_url) to import them",
                m.dir.display()
            ),
        };
    }
    let Some(url) = settings.importer_database_url() else {
        return StepOutcome::Waiting {
            capability: format!(
                "importer_database_url is not set: the results are kept at {}, waiting for BIOMERO.importer's database",
                m.dir.display()
            ),
        };
    };
    let plan = match Plan::read(s) {
        Ok(p) => p,
        Err(o) => return o,
    };
    let (dataset, screen) = match destinations(&doc, Some(&plan)) {
        Ok(d) => d,
        Err(reason) => return failed(reason),
    };
    let paths = match settings.importer_path_map.as_deref().map(PathMap::parse) {
        None => PathMap::default(),
        Some(Ok(p)) => p,
        Some(Err(e)) => return failed(format!("importer_path_map: {e}")),
    };
    let orders = match importer::orders_for(
        &s.id,
        &m,
        &OrderRules {
            group: &doc.user.group,
            user: &doc.user.name,
            dataset,
            screen,
            only_labels: settings.import_only_labels,
            paths: &paths,
        },
    ) {
        Ok(o) => o,
        Err(e) => {
            return failed(format!("{e} (the results are kept at {})", m.dir.display()));
        }
    };
    if orders.is_empty() {
        tracing::info!(dir = %m.dir.display(), "the results hold no images: nothing to import");
        let (attached, attach_notes) = match attachments(ctx, s, &doc, &plan, &m).await {
            Ok(a) => a,
            Err(o) => return o,
        };
        cleanup(ctx, s, &doc).await;
        return ImportRecord {
            kept: m.dir.clone(),
            orders: Vec::new(),
            stages: Vec::new(),
            note: Some("the results hold no images; they are kept, nothing was imported".into()),
            attached,
            attach_notes,
        }
        .done(false);
    }
    let pool = match ctx.runtime.importer.pool(&url) {
        Ok(p) => p,
        Err(e) => return failed(format!("importer_database_url: {e}")),
    };
    let mut states = Vec::new();
    for o in &orders {
        match importer::place(&pool, o).await {
            Ok(true) => {
                tracing::info!(uuid = %o.uuid, set = %o.set, files = o.files.len(), "importer order placed");
            }
            Ok(false) => {}
            Err(e) => return results_outcome(&e),
        }
        match importer::state(&pool, &o.uuid).await {
            Ok(Some(st)) => states.push((o, st)),
            Ok(None) => {
                return StepOutcome::Transient {
                    error: format!("order {} was placed but cannot be read back", o.uuid),
                };
            }
            Err(e) => return results_outcome(&e),
        }
    }
    let summary: Vec<OrderStage> = states
        .iter()
        .map(|(o, st)| OrderStage {
            uuid: o.uuid.clone(),
            set: o.set.clone(),
            files: o.files.len(),
            stage: st.stage.clone(),
        })
        .collect();
    if let Some((o, st)) = states
        .iter()
        .find(|(_, st)| st.stage == importer::STAGE_FAILED)
    {
        return failed(format!(
            "BIOMERO.importer failed order {} ({} {}): {}",
            o.uuid,
            o.files.len(),
            o.set,
            st.description.as_deref().unwrap_or("no description given")
        ))
        .with_detail(json!({ "orders": summary }));
    }
    if states
        .iter()
        .all(|(_, st)| st.stage == importer::STAGE_COMPLETED)
    {
        let latency = states.iter().map(|(_, st)| st.age_secs).max().unwrap_or(0);
        #[allow(clippy::cast_precision_loss)]
        crate::metrics::Metrics::observe(
            &ctx.runtime.metrics.import_latency,
            &s.workflow,
            latency as f64,
        );
        let (attached, attach_notes) = match attachments(ctx, s, &doc, &plan, &m).await {
            Ok(a) => a,
            Err(o) => return o,
        };
        cleanup(ctx, s, &doc).await;
        return ImportRecord {
            kept: m.dir.clone(),
            orders,
            stages: summary,
            note: None,
            attached,
            attach_notes,
        }
        .done(false);
    }
    if let Some((o, st)) = states
        .iter()
        .find(|(_, st)| st.age_secs > settings.import_timeout_secs)
    {
        return failed(format!(
            "BIOMERO.importer has not finished order {} after {} s (still `{}`, import_timeout_secs = {}); is BIOMERO.importer running against this database?",
            o.uuid, st.age_secs, st.stage, settings.import_timeout_secs
        ))
        .with_detail(json!({ "orders": summary }));
    }
    // look often at first, then less often as an import takes longer (at most once a
    // minute), so a long import leaves tens of progress events, not thousands
    let age = states.iter().map(|(_, st)| st.age_secs).max().unwrap_or(0);
    let poll = settings.import_poll_secs;
    StepOutcome::Later {
        detail: json!({ "orders": summary }),
        after: Duration::from_secs((age / 10).clamp(poll, poll.max(60))),
    }
}

/// The attachments the options ask for, made once each with biomero-stage's OMERO account.
async fn attachments(
    ctx: &StepContext,
    s: &Submission,
    doc: &SubmissionDoc,
    plan: &Plan,
    m: &ResultManifest,
) -> Result<(Vec<super::attach::Attached>, Vec<String>), StepOutcome> {
    if !doc.options.attach.any() {
        return Ok((Vec::new(), Vec::new()));
    }
    let destination: Vec<(&'static str, i64)> = match destinations(doc, Some(plan)) {
        Ok((dataset, screen)) => dataset
            .map(|d| ("dataset", d))
            .into_iter()
            .chain(screen.map(|s| ("screen", s)))
            .collect(),
        Err(_) => Vec::new(),
    };
    let (todo, notes) = super::attach::plan(&doc.options.attach, &s.id, plan, m, &destination);
    for n in &notes {
        tracing::warn!(note = %n, "not attached");
    }
    if todo.is_empty() {
        return Ok((Vec::new(), notes));
    }
    let config = ctx.runtime.config.current();
    let st = &config.settings.settings;
    let (Some(url), Some(user)) = (&st.omero_url, &st.omero_user) else {
        return Err(StepOutcome::Waiting {
            capability: "omero_url and omero_user are not set: the results are imported, and wait to be attached in OMERO (BIOMERO's 1), 2), 5))".into(),
        });
    };
    let password = match st.omero_password() {
        Ok(Some(p)) => p,
        Ok(None) => {
            return Err(StepOutcome::Waiting {
                capability: "no OMERO password (omero_password_file): the results wait to be attached in OMERO".into(),
            });
        }
        Err(e) => return Err(failed(e.to_string())),
    };
    let session = stage_source::omero::UserSession::service(
        url,
        st.omero_server_id,
        user,
        &password,
        Duration::from_secs(st.omero_timeout_secs),
    )
    .await
    .map_err(|e| StepOutcome::Transient {
        error: e.to_string(),
    })?;
    let work = st.staging_dir().join(&s.id).join("attach");
    match super::attach::attach(&session, &todo, m, &work).await {
        Ok(done) => Ok((done, notes)),
        Err(super::attach::AttachError::Transient(e)) => Err(StepOutcome::Transient { error: e }),
        Err(super::attach::AttachError::Permanent(e)) => Err(failed(format!(
            "{e} (the results are imported and kept at {})",
            m.dir.display()
        ))),
    }
}

/// After a successful import: the job's folder and log on the cluster (unless
/// kept) and the local staging folder go. Failures are warnings: the results are safe.
pub(crate) async fn cleanup(ctx: &StepContext, s: &Submission, doc: &SubmissionDoc) {
    let config = ctx.runtime.config.current();
    let settings = &config.settings.settings;
    let keep = doc.options.keep_remote_data || settings.keep_remote_data;
    if !keep && let Ok(cluster) = super::cluster(ctx) {
        let job_id = SubmitRecord::read(s).ok().map(|r| r.job_id);
        if let Err(e) = cluster.transport.remove(&s.id, job_id).await {
            tracing::warn!(error = %e, "cannot remove the job's folder on the cluster");
        }
    }
    let staging = settings.staging_dir().join(&s.id);
    if let Err(e) = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&staging) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r.map_err(|e| e.to_string()))
    {
        tracing::warn!(error = %e, "cannot remove the local staging folder");
    }
}
