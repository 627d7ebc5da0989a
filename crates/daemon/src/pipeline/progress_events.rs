//! A long step's progress in its submission's history: bytes and files done of the step's
//! [`Meter`], with rate and time left, as a `progress` event at most every
//! [`EVERY`] and only when something moved, so an hour of staging or transfer leaves a few
//! hundred small events at most and a stalled one none.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use stage_common::meter::{Meter, Reading};
use tokio_util::sync::CancellationToken;

use stage_store::Store;

use super::Step;

/// The least time between two progress events of one step.
pub const EVERY: Duration = Duration::from_secs(5);

/// Writes a step's progress until [`Reporter::stop`].
pub struct Reporter {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Reporter {
    /// Starts reporting `meter` of `step` into submission `id`'s history in `store`.
    pub fn start(store: &Store, id: &str, step: Step, meter: Arc<Meter>) -> Reporter {
        Self::start_beside(store, id, step, meter, None)
    }

    /// [`Reporter::start`], with the upload made while the step runs (`upload_while_staging`)
    /// counted on `upload` and kept in the same events as [`uploaded`], until stopped.
    pub fn start_beside(
        store: &Store,
        id: &str,
        step: Step,
        meter: Arc<Meter>,
        upload: Option<Arc<Meter>>,
    ) -> Reporter {
        let stop = CancellationToken::new();
        let (store, id, halt) = (store.clone(), id.to_owned(), stop.clone());
        let task = tokio::spawn(async move {
            let mut last: Option<(u64, u64, u64)> = None;
            loop {
                tokio::select! {
                    () = halt.cancelled() => break,
                    () = tokio::time::sleep(EVERY) => {}
                }
                let r = meter.read();
                let sent = upload.as_ref().map(|u| u.read());
                let now = (r.bytes_done, r.files_done, sent.map_or(0, |u| u.bytes_done));
                if (r.bytes_total == 0 && now.2 == 0) || last == Some(now) {
                    continue;
                }
                last = Some(now);
                let mut body = detail(&r);
                if let (Some(u), Some(map)) = (sent, body.as_object_mut()) {
                    map.insert("uploaded".into(), uploaded(&u));
                }
                if let Err(e) = store.progress(&id, step.name(), &body).await {
                    tracing::warn!(id = %id, error = %e, "cannot record the step's progress");
                }
            }
        });
        Reporter { stop, task }
    }

    /// Stops reporting (the step's own event follows); waits for a write under way.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// A reading as the history keeps it: `progress` (whole percent, as a job's progress is),
/// bytes and files done and known, bytes per second and seconds left.
pub fn detail(r: &Reading) -> Value {
    let pct = r
        .bytes_done
        .saturating_mul(100)
        .checked_div(r.bytes_total)
        .unwrap_or(0)
        .min(100);
    json!({
        "progress": pct,
        "bytes_done": r.bytes_done,
        "bytes_total": r.bytes_total,
        "files_done": r.files_done,
        "files_total": r.files_total,
        "bytes_per_s": r.rate().round(),
        "eta_s": r.eta().map(f64::ceil),
    })
}

/// An upload made beside a step, whose total is not known while it runs (it sends outputs as
/// they are staged): bytes and files sent, and bytes per second since it began.
pub fn uploaded(r: &Reading) -> Value {
    json!({
        "bytes_done": r.bytes_done,
        "files_done": r.files_done,
        "bytes_per_s": r.rate().round(),
    })
}

/// Staging's progress on a [`Meter`]: the engine counts planes, the plan knows the bytes, so
/// bytes done are the plan's bytes times the share of planes done (exact when planes are of
/// one size), and files are outputs complete.
pub struct StagingMeter {
    meter: Arc<Meter>,
    bytes: u64,
    planes_total: AtomicU64,
    planes_done: AtomicU64,
    credited: AtomicU64,
}

impl StagingMeter {
    /// For a plan of `bytes` pixel bytes in `outputs` outputs.
    pub fn new(meter: Arc<Meter>, bytes: u64, outputs: u64) -> Self {
        meter.add_total(bytes, outputs);
        StagingMeter {
            meter,
            bytes,
            planes_total: AtomicU64::new(0),
            planes_done: AtomicU64::new(0),
            credited: AtomicU64::new(0),
        }
    }
}

impl stage_ngff::progress::Progress for StagingMeter {
    fn add_total(&self, n: u64) {
        self.planes_total.fetch_add(n, Ordering::Relaxed);
    }

    fn advance(&self, n: u64) {
        let done = self.planes_done.fetch_add(n, Ordering::Relaxed) + n;
        let total = self.planes_total.load(Ordering::Relaxed).max(done);
        let share = u128::from(self.bytes) * u128::from(done) / u128::from(total.max(1));
        let target = u64::try_from(share).unwrap_or(self.bytes);
        let before = self.credited.fetch_max(target, Ordering::Relaxed);
        if target > before {
            self.meter.advance(target - before, 0);
        }
    }

    fn output_done(&self, _bytes: u64) {
        self.meter.advance(0, 1);
    }
}

#[cfg(test)]
mod tests {
    use stage_ngff::progress::Progress as _;

    use super::*;

    #[test]
    fn a_reading_is_kept_with_percent_rate_and_time_left() {
        let r = Reading {
            bytes_total: 4_000,
            bytes_done: 1_000,
            files_total: 8,
            files_done: 2,
            elapsed: Duration::from_secs(2),
        };
        let m = Arc::new(Meter::new());
        let staging = StagingMeter::new(m.clone(), 1_000, 2);
        staging.add_total(10);
        staging.advance(3);
        staging.advance(2);
        staging.output_done(500);
        let now = m.read();
        assert_eq!(
            (now.bytes_done, now.files_done, now.files_total),
            (500, 1, 2)
        );
        // more planes known later never takes bytes back
        staging.add_total(10);
        staging.advance(1);
        assert_eq!(m.read().bytes_done, 500);
        assert_eq!(
            detail(&r),
            json!({"progress": 25, "bytes_done": 1000, "bytes_total": 4000, "files_done": 2,
                   "files_total": 8, "bytes_per_s": 500.0, "eta_s": 6.0})
        );
    }

    /// A step that moves for 9 s and then stalls leaves a progress event at most every 5 s
    /// while it moves (each with bytes, files, rate and time left) and none while it stalls:
    /// real time, a real SQLite queue.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_step_reports_at_most_every_5_s_and_nothing_while_stalled() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}", d.path().join("q.sqlite").display()))
            .await
            .unwrap();
        store
            .insert(&stage_store::NewSubmission {
                id: "long".into(),
                workflow: "cellpose".into(),
                request: json!({"version": 1, "workflow": "cellpose"}),
                notices: Vec::new(),
            })
            .await
            .unwrap();
        let progress = || async {
            store
                .events("long")
                .await
                .unwrap()
                .into_iter()
                .filter(|e| e.step == "upload" && e.outcome == stage_store::Outcome::Progress)
                .collect::<Vec<_>>()
        };
        let meter = Arc::new(Meter::new());
        meter.add_total(10_000, 10);
        let started = std::time::Instant::now();
        // an upload beside the step, sending 2 files of 500 bytes a second (no total known)
        let beside = Arc::new(Meter::new());
        let reporter = Reporter::start_beside(
            &store,
            "long",
            Step::Upload,
            meter.clone(),
            Some(beside.clone()),
        );
        for _ in 0..9 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            meter.advance(1_000, 1);
            beside.advance(1_000, 2);
        }
        // the tick at 10 s records the last move; the one at 15 s finds nothing new
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let moving = progress().await;
        let took = started.elapsed();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let stalled = progress().await;
        reporter.stop().await;
        let most = usize::try_from(took.as_millis() / EVERY.as_millis()).unwrap_or(usize::MAX);
        assert!(
            !moving.is_empty() && moving.len() <= most,
            "{} events in {took:?} (at most {most}): {moving:?}",
            moving.len()
        );
        assert_eq!(
            stalled.len(),
            moving.len(),
            "an event while nothing moved: {stalled:?}"
        );
        let last = &moving[moving.len() - 1].detail;
        assert_eq!(last["bytes_total"], 10_000, "{last}");
        assert_eq!(last["files_total"], 10, "{last}");
        assert!(
            last["bytes_done"].as_u64().is_some_and(|b| b >= 5_000),
            "{last}"
        );
        assert!(
            last["bytes_per_s"].as_f64().is_some_and(|r| r > 0.0),
            "{last}"
        );
        assert!(last["eta_s"].is_number(), "{last}");
        // what the upload beside had sent, with its rate, in the same event
        let sent = &last["uploaded"];
        assert!(
            sent["bytes_done"].as_u64().is_some_and(|b| b >= 5_000)
                && sent["files_done"].as_u64().is_some_and(|f| f >= 10),
            "{last}"
        );
        assert!(
            sent["bytes_per_s"].as_f64().is_some_and(|r| r > 0.0),
            "{last}"
        );
    }
}
