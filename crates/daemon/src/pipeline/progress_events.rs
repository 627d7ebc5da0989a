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

use super::{Step, StepContext};

/// The least time between two progress events of one step.
pub const EVERY: Duration = Duration::from_secs(5);

/// Writes a step's progress until [`Reporter::stop`].
pub struct Reporter {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Reporter {
    /// Starts reporting `meter` of `step` into submission `id`'s history.
    pub fn start(ctx: &StepContext, id: &str, step: Step, meter: Arc<Meter>) -> Reporter {
        let stop = CancellationToken::new();
        let (store, id, halt) = (ctx.runtime.store.clone(), id.to_owned(), stop.clone());
        let task = tokio::spawn(async move {
            let mut last: Option<(u64, u64)> = None;
            loop {
                tokio::select! {
                    () = halt.cancelled() => break,
                    () = tokio::time::sleep(EVERY) => {}
                }
                let r = meter.read();
                let now = (r.bytes_done, r.files_done);
                if r.bytes_total == 0 || last == Some(now) {
                    continue;
                }
                last = Some(now);
                if let Err(e) = store.progress(&id, step.name(), &detail(&r)).await {
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
}
