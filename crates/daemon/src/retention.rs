//! `keep_history_days`: finished submissions' histories cut to their last event once they
//! are that old ([`stage_store::Store::cut_histories`]), 10 s after start and then
//! every hour, in batches, so a queue of years holds a few rows per submission.

use std::time::Duration;

use stage_store::Cut;
use tokio_util::sync::CancellationToken;

use crate::runtime::Runtime;

/// How long after start the first round runs (the daemon's own start comes first).
const FIRST: Duration = Duration::from_secs(10);
/// How often a round runs.
const EVERY: Duration = Duration::from_hours(1);
/// Submissions cut per transaction.
const BATCH: i64 = 500;

/// Runs until `shutdown`: a round after [`FIRST`], then every [`EVERY`].
pub async fn run(rt: Runtime, shutdown: CancellationToken) {
    let mut wait = FIRST;
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => return,
        }
        wait = EVERY;
        match round(&rt, &shutdown).await {
            Ok(c) if c.submissions > 0 => tracing::info!(
                submissions = c.submissions,
                events = c.events,
                "finished submissions' histories cut to their last event (keep_history_days)"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot cut finished submissions' histories"),
        }
    }
}

/// One round: every history due, a batch at a time; nothing when `keep_history_days` is 0.
pub async fn round(rt: &Runtime, shutdown: &CancellationToken) -> stage_store::Result<Cut> {
    let config = rt.config.current();
    let days = config.settings.settings.keep_history_days;
    if days == 0 {
        return Ok(Cut::default());
    }
    // what BIOMERO's event store shows (and 2.9's detached runs are told apart by) must be
    // written there whole before it goes here
    let mirrored = crate::biomero::mirror::configured(&config.slurm).is_ok()
        || config.settings.settings.biomero_detached;
    let older_than = Duration::from_hours(24 * u64::from(days));
    let mut total = Cut::default();
    loop {
        let c = rt.store.cut_histories(older_than, mirrored, BATCH).await?;
        total.submissions += c.submissions;
        total.events += c.events;
        if c.submissions < BATCH.unsigned_abs() || shutdown.is_cancelled() {
            return Ok(total);
        }
    }
}
