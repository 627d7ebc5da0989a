//! The `upload` step: the staged inputs to `<slurm_data_path>/biomero_<id>/data/in`
//! on the cluster through the configuration's transport (tar over one SSH
//! channel, resumable and verified, or a local copy when this host mounts the
//! data path), with `data/out` and `data/gt` created beside them. Prep-only
//! submissions end here.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use stage_cluster::layout::check_id;
use stage_cluster::transfer::TransferReport;
use stage_common::meter::Meter;
use stage_store::Submission;

use super::super::progress_events::Reporter;
use super::super::record::StepRecord;
use super::super::{Step, StepContext, StepOutcome};
use super::stage::StageRecord;
use super::{cluster_outcome, unless_cancelled};
use crate::metrics::count_bytes;

/// What the upload step keeps: where the inputs are on the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadRecord {
    /// The `[SSH] host` alias.
    pub host: String,
    /// `<slurm_data_path>/biomero_<id>` (the job's `DATA_PATH`).
    pub job_dir: String,
    /// Its `data/in`.
    pub inputs: String,
    /// What the transfer did.
    pub transfer: TransferReport,
    /// The pipeline ends here (nothing is submitted).
    pub prep_only: bool,
}

impl StepRecord for UploadRecord {
    const STEP: Step = Step::Upload;
}

/// Runs the step.
pub async fn run(ctx: &StepContext, s: &Submission) -> StepOutcome {
    if let Err(e) = check_id(&s.id) {
        return cluster_outcome(&e);
    }
    let staged = match StageRecord::read(s) {
        Ok(r) => r,
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
    let meter = Arc::new(Meter::new());
    let reporter = Reporter::start(&ctx.runtime.store, &s.id, Step::Upload, meter.clone());
    let transport = &cluster.transport;
    // an upload made while staging stands when both sides still hold what it sent
    let stands = match &staged.streamed {
        Some(streamed) => {
            unless_cancelled(
                ctx,
                transport.confirm_streamed(&s.id, &staged.inputs, streamed),
            )
            .await
        }
        None => Ok(None),
    };
    let sent = match stands {
        Ok(Some(report)) => Ok(report),
        Ok(None) => {
            if staged.streamed.is_some() {
                tracing::info!("the upload made while staging does not stand: resuming it");
            }
            unless_cancelled(ctx, transport.upload(&s.id, &staged.inputs, meter)).await
        }
        Err(e) => Err(e),
    };
    reporter.stop().await;
    let report = match sent {
        Ok(r) => r,
        Err(e) => return cluster_outcome(&e),
    };
    count_bytes(&ctx.runtime.metrics, "uploaded", report.bytes_sent);
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
    let layout = &cluster.layout;
    UploadRecord {
        host: cluster.remote.host().to_owned(),
        job_dir: layout.job_dir(&s.id),
        inputs: layout.inputs(&s.id),
        transfer: report,
        prep_only,
    }
    .done(prep_only)
}
