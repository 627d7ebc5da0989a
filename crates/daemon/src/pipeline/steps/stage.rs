//! The `stage` step: execute the recorded plan into
//! `<staging_dir>/<submission id>/data/in` with the ngff engine.
//!
//! Outputs already complete from an interrupted run are kept (each output is
//! renamed into place only when complete), so a daemon killed mid-stage
//! continues with the next output after restart. A cancellation stops
//! between planes.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde_json::json;
use stage_ngff::convert::TiffOptions;
use stage_ngff::write::array::Compression;
use stage_source::Plan;
use stage_source::stage::{INPUTS_DIR, MANIFEST_FILE, StageContext};
use stage_store::Submission;

use super::super::{StepContext, StepOutcome};
use crate::metrics::DirectionLabel;

/// Runs the step.
pub async fn run(ctx: &StepContext, s: &Submission) -> StepOutcome {
    let plan: Plan = match s
        .data
        .get("plan")
        .map(|p| serde_json::from_value(p.clone()))
    {
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            return StepOutcome::Failed {
                reason: format!("the recorded plan cannot be read: {e}"),
                detail: json!({}),
            };
        }
        None => {
            return StepOutcome::Failed {
                reason: "no plan was recorded for this submission".into(),
                detail: json!({}),
            };
        }
    };
    let config = ctx.runtime.config.current();
    let settings = &config.settings.settings;
    let omero = match ctx.runtime.sources.sources(settings) {
        Ok((_, o)) => o,
        Err(e) => return super::source_outcome(&e),
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let token = ctx.cancel.clone();
    let watcher = tokio::spawn(async move {
        token.cancelled().await;
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let root = settings.staging_dir().join(&s.id);
    let stage_ctx = StageContext {
        omero,
        progress: Arc::new(()),
        cancel,
        tiff: TiffOptions::default(),
        compression: Compression::default(),
    };
    let result = stage_source::stage::execute(&plan, &root, &stage_ctx).await;
    watcher.abort();
    match result {
        Ok(manifest) => {
            let fresh: u64 = manifest
                .entries
                .iter()
                .filter(|e| e.how != stage_source::stage::How::AlreadyStaged)
                .map(|e| e.bytes)
                .sum();
            ctx.runtime
                .metrics
                .bytes
                .get_or_create(&DirectionLabel {
                    direction: "staged".into(),
                })
                .inc_by(fresh);
            StepOutcome::Done {
                result: json!({
                    "root": root,
                    "inputs": root.join(INPUTS_DIR),
                    "manifest": root.join(MANIFEST_FILE),
                    "outputs": manifest.entries.len(),
                    "bytes": plan.bytes,
                }),
                last: false,
            }
        }
        Err(stage_source::SourceError::Cancelled) => StepOutcome::Cancelled,
        Err(e) => super::source_outcome(&e),
    }
}
