//! The `stage` step: execute the recorded plan into
//! `<staging_dir>/<submission id>/data/in` with the ngff engine.
//!
//! Outputs already complete from an interrupted run are kept (each output is
//! renamed into place only when complete), so a daemon killed mid-stage
//! continues with the next output after restart. A cancellation stops
//! between planes.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};
use stage_ngff::convert::TiffOptions;
use stage_ngff::write::array::Compression;
use stage_source::Plan;
use stage_source::stage::{INPUTS_DIR, MANIFEST_FILE, StageContext};
use stage_store::Submission;

use super::super::record::StepRecord;
use super::super::{Step, StepContext, StepOutcome};
use crate::metrics::count_bytes;

/// What the stage step keeps: where the staged inputs are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    /// `<staging_dir>/<id>`.
    pub root: PathBuf,
    /// `<root>/data/in`: what the upload sends.
    pub inputs: PathBuf,
    /// `<root>/stage-manifest.json`.
    pub manifest: PathBuf,
    /// Outputs staged.
    pub outputs: usize,
    /// Pixel bytes planned.
    pub bytes: u64,
}

impl StepRecord for StageRecord {
    const STEP: Step = Step::Stage;
}

/// Runs the step.
pub async fn run(ctx: &StepContext, s: &Submission) -> StepOutcome {
    let plan = match Plan::read(s) {
        Ok(p) => p,
        Err(o) => return o,
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
            count_bytes(&ctx.runtime.metrics, "staged", fresh);
            StageRecord {
                inputs: root.join(INPUTS_DIR),
                manifest: root.join(MANIFEST_FILE),
                root,
                outputs: manifest.entries.len(),
                bytes: plan.bytes,
            }
            .done(false)
        }
        Err(stage_source::SourceError::Cancelled) => StepOutcome::Cancelled,
        Err(e) => super::source_outcome(&e),
    }
}
