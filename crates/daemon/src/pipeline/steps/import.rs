//! The `import` step: the kept results handed to BIOMERO.importer.
//!
//! Orders go into the importer's `imports` table (CONTRACTS §5) — one per
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

use serde_json::{Value, json};
use stage_results::importer::{self, Order, OrderRules, PathMap};
use stage_results::keep::ResultManifest;
use stage_source::Plan;
use stage_store::Submission;

use super::super::{StepContext, StepOutcome};
use super::{failed, results_outcome};
use crate::intake::{ResultsTarget, SubmissionDoc};

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
    let path = super::recorded(s, "collect", "manifest")?;
    let path = PathBuf::from(path.as_str().unwrap_or_default());
    let text = std::fs::read(&path).map_err(|e| {
        failed(format!(
            "the result manifest {} cannot be read ({e}); the kept results were moved or removed",
            path.display()
        ))
    })?;
    serde_json::from_slice(&text)
        .map_err(|e| failed(format!("the result manifest {}: {e}", path.display())))
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
    let plan: Option<Plan> = s
        .data
        .get("plan")
        .and_then(|p| serde_json::from_value(p.clone()).ok());
    let (dataset, screen) = match destinations(&doc, plan.as_ref()) {
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
        cleanup(ctx, s, &doc).await;
        return StepOutcome::Done {
            result: json!({ "kept": m.dir, "orders": [], "note": "the results hold no images; they are kept, nothing was imported" }),
            last: false,
        };
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
    let summary: Vec<Value> = states
        .iter()
        .map(|(o, st)| json!({ "uuid": o.uuid, "set": o.set, "files": o.files.len(), "stage": st.stage }))
        .collect();
    if let Some((o, st)) = states
        .iter()
        .find(|(_, st)| st.stage == importer::STAGE_FAILED)
    {
        return StepOutcome::Failed {
            reason: format!(
                "BIOMERO.importer failed order {} ({} {}): {}",
                o.uuid,
                o.files.len(),
                o.set,
                st.description.as_deref().unwrap_or("no description given")
            ),
            detail: json!({ "orders": summary }),
        };
    }
    if states
        .iter()
        .all(|(_, st)| st.stage == importer::STAGE_COMPLETED)
    {
        cleanup(ctx, s, &doc).await;
        return StepOutcome::Done {
            result: json!({ "kept": m.dir, "orders": orders_json(&orders), "stages": summary }),
            last: false,
        };
    }
    if let Some((o, st)) = states
        .iter()
        .find(|(_, st)| st.age_secs > settings.import_timeout_secs)
    {
        return StepOutcome::Failed {
            reason: format!(
                "BIOMERO.importer has not finished order {} after {} s (still `{}`, import_timeout_secs = {}); is BIOMERO.importer running against this database?",
                o.uuid, st.age_secs, st.stage, settings.import_timeout_secs
            ),
            detail: json!({ "orders": summary }),
        };
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

fn orders_json(orders: &[Order]) -> Value {
    serde_json::to_value(orders).unwrap_or(Value::Null)
}

/// After a successful import: the job's folder and log on the cluster (unless
/// kept) and the local staging folder go. Failures are warnings: the results are safe.
pub(crate) async fn cleanup(ctx: &StepContext, s: &Submission, doc: &SubmissionDoc) {
    let config = ctx.runtime.config.current();
    let settings = &config.settings.settings;
    let keep = doc.options.keep_remote_data || settings.keep_remote_data;
    if !keep && let Ok(cluster) = super::cluster(ctx) {
        let layout = &cluster.layout;
        let job_log = s
            .data
            .get("submit")
            .and_then(|d| d.get("job_id"))
            .and_then(Value::as_u64)
            .map(stage_cluster::Layout::job_log);
        let r = if let Some(dir) = cluster.local_job_dir(&s.id) {
            tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
        } else {
            let mut args = vec!["-rf".into(), "--".into(), layout.job_dir(&s.id)];
            args.extend(job_log);
            cluster
                .remote
                .run("rm", &args)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        if let Err(e) = r {
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
