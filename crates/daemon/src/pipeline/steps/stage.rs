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
use tracing::Instrument as _;

use stage_cluster::ClusterError;
use stage_cluster::transfer::upload::Streamed;
use stage_common::meter::Meter;

use super::super::progress_events::{Reporter, StagingMeter};
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
    /// The upload made while staging (`upload_while_staging`), when it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streamed: Option<Streamed>,
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
    let built = match ctx.runtime.sources.sources(settings) {
        Ok(b) => b,
        Err(e) => return super::source_outcome(&e),
    };
    let group = match super::document(s) {
        Ok(doc) => doc.user.group,
        Err(o) => return o,
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let token = ctx.cancel.clone();
    let watcher = tokio::spawn(async move {
        token.cancelled().await;
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let root = settings.staging_dir().join(&s.id);
    if let Err(o) = room_for(&plan, &root, settings.max_stage_bytes) {
        return o;
    }
    let streaming = start_streaming(ctx, s, &root.join(INPUTS_DIR));
    let (log, flushed) = export_log(ctx, &s.id);
    let meter = Arc::new(Meter::new());
    let outputs = (plan.images.len() + plan.plates.len()) as u64;
    let reporter = Reporter::start_beside(
        &ctx.runtime.store,
        &s.id,
        Step::Stage,
        meter.clone(),
        streaming.as_ref().map(|st| st.meter.clone()),
    );
    let stage_ctx = StageContext {
        omero: built.omero,
        exporter: built.exporter,
        group,
        log,
        progress: Arc::new(StagingMeter::new(meter, plan.bytes, outputs)),
        cancel,
        tiff: TiffOptions::default(),
        compression: Compression::default(),
        sharding: if settings.zarr_shards {
            stage_ngff::copy::Sharding::Shards
        } else {
            stage_ngff::copy::Sharding::None
        },
        on_staged: streaming.as_ref().map(|st| st.tell.clone()),
    };
    let result = stage_source::stage::execute(&plan, &root, &stage_ctx).await;
    watcher.abort();
    // the exporter's last lines are in the history before the step's own event
    drop(stage_ctx);
    let _ = flushed.await;
    // the stream ends with the last name told (every sender is now dropped); its progress is
    // reported until then
    let streamed = match streaming {
        Some(Streaming { tell, task, .. }) if result.is_ok() => {
            drop(tell);
            // a cancellation does not wait for the stream (the next step sees it)
            tokio::select! {
                sent = finish_streaming(task) => sent,
                () = ctx.cancel.cancelled() => None,
            }
        }
        Some(Streaming { task, .. }) => {
            task.abort();
            None
        }
        None => None,
    };
    reporter.stop().await;
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
                streamed,
            }
            .done(false)
        }
        Err(stage_source::SourceError::Cancelled) => StepOutcome::Cancelled,
        Err(e) => super::source_outcome(&e),
    }
}

/// The upload made while staging, under way.
struct Streaming {
    /// Tells it each finished output.
    tell: Arc<dyn Fn(&str) + Send + Sync>,
    /// What it has sent (its total grows as outputs are told).
    meter: Arc<Meter>,
    /// The upload.
    task: tokio::task::JoinHandle<Result<Streamed, ClusterError>>,
}

/// The upload made while staging, begun when `upload_while_staging` is on, the transport
/// can stream, and the stage starts afresh (`inputs` holds nothing: a resumed stage is
/// uploaded after it, by the upload step's resume).
fn start_streaming(
    ctx: &StepContext,
    s: &Submission,
    inputs: &std::path::Path,
) -> Option<Streaming> {
    let config = ctx.runtime.config.current();
    if !config.settings.settings.upload_while_staging
        || std::fs::read_dir(inputs).is_ok_and(|mut d| d.next().is_some())
    {
        return None;
    }
    let cluster = super::cluster(ctx).ok()?;
    if !cluster.transport.streams() || stage_cluster::layout::check_id(&s.id).is_err() {
        return None;
    }
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let tell: Arc<dyn Fn(&str) + Send + Sync> = Arc::new(move |name: &str| {
        // a closed stream (the upload failed) is left to the upload step
        let _ = tx.send(name.to_owned());
    });
    let (id, inputs) = (s.id.clone(), inputs.to_path_buf());
    let meter = Arc::new(Meter::new());
    let sent = meter.clone();
    let span = tracing::info_span!("upload_while_staging");
    let task = tokio::spawn(
        async move {
            cluster
                .transport
                .upload_streamed(&id, &inputs, rx, sent)
                .await
        }
        .instrument(span),
    );
    Some(Streaming { tell, meter, task })
}

/// The upload made while staging, once the stream has ended: kept when it completed
/// verified; otherwise the upload step sends what is missing, as after any interrupted upload.
async fn finish_streaming(
    task: tokio::task::JoinHandle<Result<Streamed, ClusterError>>,
) -> Option<Streamed> {
    match task.await {
        Ok(Ok(sent)) => {
            tracing::info!(
                files = sent.report.files,
                bytes = sent.report.bytes,
                seconds = sent.report.seconds,
                "uploaded while staging"
            );
            Some(sent)
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "the upload while staging did not complete; the upload step sends the inputs");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "the upload while staging stopped; the upload step sends the inputs");
            None
        }
    }
}

/// The exporter's lines into the submission's history: gathered, and written as one `stage`
/// note at most every 5 s (the last lines when it ends), so a chatty export keeps the
/// history small. The task ends, after writing what is left, once every copy of the
/// returned function is dropped.
fn export_log(
    ctx: &StepContext,
    id: &str,
) -> (
    Arc<dyn Fn(String) + Send + Sync>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let (store, id) = (ctx.runtime.store.clone(), id.to_owned());
    let task = tokio::spawn(async move {
        const EVERY: std::time::Duration = std::time::Duration::from_secs(5);
        const KEEP: usize = 40;
        let mut pending: Vec<String> = Vec::new();
        let mut skipped = 0usize;
        let mut last = tokio::time::Instant::now() - EVERY;
        loop {
            let next = tokio::time::timeout_at(last + EVERY, rx.recv()).await;
            let closed = matches!(next, Ok(None));
            if let Ok(Some(l)) = next {
                if pending.len() == KEEP {
                    pending.remove(0);
                    skipped += 1;
                }
                pending.push(l);
            }
            if !pending.is_empty() && (closed || tokio::time::Instant::now() >= last + EVERY) {
                let detail = serde_json::json!({
                    "exporter": std::mem::take(&mut pending),
                    "lines_left_out": std::mem::take(&mut skipped),
                });
                if let Err(e) = store.note(&id, "stage", &detail).await {
                    tracing::warn!(id = %id, error = %e, "cannot note the exporter's output");
                }
                last = tokio::time::Instant::now();
            }
            if closed {
                break;
            }
        }
    });
    (
        Arc::new(move |l: String| {
            let _ = tx.send(l);
        }),
        task,
    )
}

/// `bytes` for a person: `1.5 GiB`.
fn human(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let b = bytes as f64;
    let gib = b / f64::from(1u32 << 30);
    if gib >= 1.0 {
        format!("{gib:.1} GiB")
    } else {
        format!("{:.1} MiB", b / f64::from(1u32 << 20))
    }
}

/// Refuses a plan whose written pixels exceed `max_stage_bytes` (a plausibility limit: a small
/// store that claims terabytes), or the free space of the staging folder (what an interrupted
/// run already wrote counted as available), with both figures.
fn room_for(plan: &Plan, root: &std::path::Path, max: u64) -> Result<(), StepOutcome> {
    let needed = plan.written_bytes();
    if needed > max {
        return Err(StepOutcome::failed(
            super::super::FailureKind::Input,
            format!(
                "staging would write {} ({needed} bytes) of pixels, above max_stage_bytes = {} ({max} bytes); check the inputs' sizes (`biomero-stage plan`), or raise max_stage_bytes if this is expected",
                human(needed),
                human(max)
            ),
        ));
    }
    // the nearest existing folder on the way to `root` tells the filesystem
    let mut probe = root.to_path_buf();
    while !probe.exists() {
        if !probe.pop() {
            return Ok(());
        }
    }
    let Ok(fs) = rustix::fs::statvfs(&probe) else {
        return Ok(());
    };
    let free = fs.f_bavail.saturating_mul(fs.f_frsize);
    let already = staged_bytes(&root.join(INPUTS_DIR));
    if needed > free.saturating_add(already) {
        return Err(StepOutcome::Transient {
            error: format!(
                "staging would write {} ({needed} bytes) but {} has {} free ({free} bytes); free space there or move staging_dir",
                human(needed),
                probe.display(),
                human(free)
            ),
        });
    }
    Ok(())
}

/// Bytes already under `dir` (an interrupted run's outputs).
fn staged_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total = total.saturating_add(m.len()),
                Err(_) => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use stage_source::plan::{Origin, OutputFormat, PixelSource, PlannedImage};

    use super::*;

    fn plan(format: OutputFormat, source: PixelSource, bytes: u64) -> Plan {
        Plan {
            version: stage_source::plan::PLAN_VERSION,
            ngff_version: "0.4".into(),
            images: vec![PlannedImage {
                output: "x".into(),
                format,
                name: "x".into(),
                source,
                origin: Origin::default(),
                bytes,
                passed_over: Vec::new(),
                renamed: None,
            }],
            plates: Vec::new(),
            bytes,
            notes: Vec::new(),
        }
    }

    /// A small store that claims 2,000,000 MiB of pixels is refused before staging writes
    /// anything: above the maximum as a failure, above the free space as a retry, both with
    /// the figures; a store passed through as it is stored is not counted.
    #[test]
    fn a_plan_that_would_write_more_than_allowed_or_free_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let claimed = 2_000_000u64 << 20;
        let tiff = plan(
            OutputFormat::Tiff,
            PixelSource::Zarr {
                path: "/data/x.zarr".into(),
            },
            claimed,
        );
        let root = d.path().join("staging/s1");
        match room_for(&tiff, &root, 1 << 40) {
            Err(StepOutcome::Failed {
                reason: message, ..
            }) => {
                assert!(
                    message.contains("max_stage_bytes") && message.contains("1953.1 GiB"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        match room_for(&tiff, &root, u64::MAX) {
            Err(StepOutcome::Transient { error }) => {
                assert!(
                    error.contains("free") && error.contains("1953.1 GiB"),
                    "{error}"
                );
            }
            other => panic!("{other:?}"),
        }
        let passed_through = plan(
            OutputFormat::Zarr,
            PixelSource::Zarr {
                path: "/data/x.zarr".into(),
            },
            claimed,
        );
        assert!(room_for(&passed_through, &root, 1 << 40).is_ok());
    }
}
