//! Every submission, from any intake, as a BIOMERO WorkflowRun, written as it happens.
//!
//! Our own event log is the queue: each step's event is committed with the
//! step, and this loop drains the log into BIOMERO's event store
//! ([`stage_tracker::Tracker::append`]), in order, one run per transaction.
//! `biomero_stage_mirror` records how far each submission is written. When
//! BIOMERO's store is down or refuses us, the pipeline goes on, the events
//! wait in the log and are written, in order, once it is back; `/readyz`
//! names the lag ([`Status`]).
//!
//! BIOMERO's `[ANALYTICS]` decides, as BIOMERO reads it: `track_workflows`
//! off writes nothing, `sqlalchemy_url` (or `SQLALCHEMY_URL`) says where, and
//! `enable_job_accounting`, `enable_job_progress`, `enable_workflow_analytics`
//! which views are projected.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use stage_tracker::project::{Enabled, Rules};
use stage_tracker::{Tracker, TrackerError, TrackerUrl};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::tracking::{self, RunFacts};
use crate::runtime::Runtime;

/// How often the log is looked at.
const POLL: Duration = Duration::from_secs(1);
/// How long to wait after the store failed.
const BACKOFF: Duration = Duration::from_secs(5);
/// Submissions written per round.
const BATCH: i64 = 100;
/// An event id seen this long ago is committed or rolled back: the scan may start past it.
const SETTLED: Duration = Duration::from_mins(1);

/// What the writer is doing, for `/readyz` and `status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// Writing to this store (no password); `None` when off.
    pub store: Option<String>,
    /// Why nothing is written, when off.
    pub off: Option<String>,
    /// The last error, until a round succeeds.
    pub error: Option<String>,
    /// When a round last wrote everything it found.
    pub last_ok: Option<DateTime<Utc>>,
    /// Events written since start.
    pub written: u64,
}

/// The writer's status, shared with the admin endpoint.
pub type SharedStatus = Arc<Mutex<Status>>;

/// The tracker the configuration asks for, or why there is none.
pub fn configured(slurm: &stage_config::SlurmConfig) -> Result<(TrackerUrl, Enabled), String> {
    let a = &slurm.analytics;
    if !a.track_workflows {
        return Err("[ANALYTICS] track_workflows is off".into());
    }
    let Some(url) = &a.sqlalchemy_url else {
        return Err("no [ANALYTICS] sqlalchemy_url (or SQLALCHEMY_URL): BIOMERO's event store is not configured".into());
    };
    let url = TrackerUrl::parse(&url.value).map_err(|e| e.to_string())?;
    Ok((
        url,
        Enabled {
            job_accounting: a.enable_job_accounting,
            job_progress: a.enable_job_progress,
            workflow_analytics: a.enable_workflow_analytics,
        },
    ))
}

fn set(status: &SharedStatus, f: impl FnOnce(&mut Status)) {
    if let Ok(mut s) = status.lock() {
        f(&mut s);
    }
}

/// Where the scan of the log may start: past ids seen long enough ago that no
/// transaction still holds a lower one, once everything up to them is written.
#[derive(Debug, Default)]
struct ScanStart {
    after: i64,
    seen: VecDeque<(Instant, i64)>,
}

impl ScanStart {
    fn observe(&mut self, last_id: i64) {
        self.seen.push_back((Instant::now(), last_id));
    }

    /// Everything found was written: move past the newest id that has settled.
    fn all_written(&mut self) {
        while let Some((t, id)) = self.seen.front().copied() {
            if t.elapsed() < SETTLED {
                break;
            }
            self.after = self.after.max(id);
            self.seen.pop_front();
        }
    }
}

/// Writes one submission's history; `Ok(events written)`.
async fn write_one(
    rt: &Runtime,
    tracker: &Tracker,
    queue: &str,
    id: &str,
) -> Result<usize, TrackerError> {
    let Some(s) = rt.store.get(id).await.map_err(store_error)? else {
        return Ok(0);
    };
    let history = rt.store.events(id).await.map_err(store_error)?;
    // attached to the future, not entered across awaits (see `detached::Loop::handle`)
    let span = tracing::info_span!("biomero_events", submission = %id);
    write_history(rt, tracker, queue, &s, &history)
        .instrument(span)
        .await
}

/// Our queue's error, as the mirror reports it.
#[allow(clippy::needless_pass_by_value, reason = "the shape `map_err` calls")]
fn store_error(e: stage_store::StoreError) -> TrackerError {
    TrackerError::Database {
        url: "the queue".into(),
        reason: e.to_string(),
    }
}

/// Appends submission `s`'s `history` to BIOMERO's store, and its detached run's end once the
/// last of the run's submissions has ended; `Ok(events written)`.
async fn write_history(
    rt: &Runtime,
    tracker: &Tracker,
    queue: &str,
    s: &stage_store::Submission,
    history: &[stage_store::Event],
) -> Result<usize, TrackerError> {
    let mut inserted = if was_cut(history) {
        0
    } else {
        append_submission(rt, tracker, queue, s, history).await?
    };
    // a detached run ends when the last of its submissions has, after all of theirs
    if let Some(link) = tracking::detached_link(s)
        && s.done
        && let Some(run) = s.request.get("run").and_then(serde_json::Value::as_str)
    {
        let subs = super::run_submissions(&rt.store, run)
            .await
            .map_err(store_error)?;
        if let Some(end) = tracking::run_end(link, &subs) {
            for sub in subs.iter().filter(|x| x.id != s.id) {
                let h = rt.store.events(&sub.id).await.map_err(store_error)?;
                if !was_cut(&h) {
                    inserted += append_submission(rt, tracker, queue, sub, &h).await?;
                }
            }
            inserted += tracker
                .append_shared(&end, &tracking::shared_aggregates(s))
                .await?
                .inserted;
        }
    }
    let seq = history.last().map_or(0, |e| e.seq);
    rt.store
        .mirror_done(&s.id, seq)
        .await
        .map_err(store_error)?;
    Ok(inserted)
}

/// Whether `history` was cut by `keep_history_days` (its first events are gone). BIOMERO's
/// events are derived from a whole history, so a cut one is never derived again: it was
/// written whole before it was cut (or never will be, when it was cut with the store off),
/// and what follows a cut (notes) makes no event there.
fn was_cut(history: &[stage_store::Event]) -> bool {
    history.first().is_some_and(|e| e.seq > 1)
}

/// Appends what BIOMERO's store does not hold yet of one submission's events.
async fn append_submission(
    rt: &Runtime,
    tracker: &Tracker,
    queue: &str,
    s: &stage_store::Submission,
    history: &[stage_store::Event],
) -> Result<usize, TrackerError> {
    let config = rt.config.current();
    let wf = config.registry.get(&s.workflow);
    // the version the run chose among those on the cluster, else the configured one
    let chosen = s
        .request
        .get("workflow_version")
        .and_then(serde_json::Value::as_str);
    let facts = RunFacts {
        queue,
        submission: s,
        history,
        workflow_version: chosen.or(wf.map(|w| w.version.as_str())).unwrap_or(""),
        mode: wf.map(|w| w.mode),
        stage_version: env!("CARGO_PKG_VERSION"),
    };
    let events = tracking::run_events(&facts);
    let appended = match tracker
        .append_shared(&events, &tracking::shared_aggregates(s))
        .await
    {
        Ok(a) => a,
        Err(TrackerError::Conflict { originator, reason }) => {
            // another program wrote into this run: it can never be written; say so once
            tracing::error!(%originator, %reason, "BIOMERO's store holds other events for this run; it is left as it is");
            stage_tracker::Appended::default()
        }
        Err(e) => return Err(e),
    };
    if appended.inserted > 0 {
        tracing::debug!(
            inserted = appended.inserted,
            rows = appended.rows,
            "written to BIOMERO's event store"
        );
    }
    Ok(appended.inserted)
}

/// The writer's state between rounds.
struct Writer {
    rt: Runtime,
    status: SharedStatus,
    queue: String,
    /// The tracker in use, and whether its tables are known to exist.
    current: Option<(TrackerUrl, Enabled, Tracker, bool)>,
    scan: ScanStart,
    /// The last error logged: a store that stays down is said once, and again when the reason changes.
    said: Option<String>,
}

impl Writer {
    fn set(&self, f: impl FnOnce(&mut Status)) {
        set(&self.status, f);
    }

    fn say(&mut self, e: &TrackerError) {
        let text = e.to_string();
        if self.said.as_deref() != Some(text.as_str()) {
            tracing::warn!(error = %text, "cannot write to BIOMERO's event store; events wait in the queue");
            self.said = Some(text);
        }
    }

    /// One look at the log: writes what waits; returns how long to wait before the next.
    async fn round(&mut self) -> Duration {
        let (url, enabled) = match configured(&self.rt.config.current().slurm) {
            Ok(c) => c,
            Err(why) => {
                self.set(|s| {
                    s.store = None;
                    s.off = Some(why);
                    s.error = None;
                });
                self.current = None;
                return POLL;
            }
        };
        // a site that runs BIOMERO 2.9's detached runs has 2.9's followers
        let rules = if self.rt.config.current().settings.settings.biomero_detached {
            Rules::V2_9
        } else {
            Rules::V2_8
        };
        if !matches!(&self.current, Some((u, e, t, _)) if *u == url && *e == enabled && t.rules() == rules)
        {
            match Tracker::new(url.clone(), enabled) {
                Ok(t) => self.current = Some((url.clone(), enabled, t.with_rules(rules), false)),
                Err(e) => {
                    self.set(|s| s.error = Some(e.to_string()));
                    return BACKOFF;
                }
            }
            self.set(|s| {
                s.store = Some(url.to_string());
                s.off = None;
            });
        }
        let Some((_, _, tracker, ready)) = self.current.clone() else {
            return POLL;
        };
        if !ready {
            if let Err(e) = tracker.ensure_tables().await {
                self.say(&e);
                self.set(|s| s.error = Some(e.to_string()));
                return BACKOFF;
            }
            if let Some(c) = self.current.as_mut() {
                c.3 = true;
            }
        }
        let queue_error = |w: &Self, e: &stage_store::StoreError| {
            w.set(|s| s.error = Some(format!("the queue: {e}")));
            BACKOFF
        };
        match self.rt.store.last_event_id().await {
            Ok(id) => self.scan.observe(id),
            Err(e) => return queue_error(self, &e),
        }
        let pending = match self.rt.store.mirror_pending(self.scan.after, BATCH).await {
            Ok(p) => p,
            Err(e) => return queue_error(self, &e),
        };
        let full = i64::try_from(pending.len()).unwrap_or(i64::MAX) >= BATCH;
        let mut written: u64 = 0;
        for p in &pending {
            match write_one(&self.rt, &tracker, &self.queue, &p.id).await {
                Ok(n) => written += u64::try_from(n).unwrap_or(u64::MAX),
                Err(e) => {
                    self.say(&e);
                    self.set(|s| {
                        s.error = Some(e.to_string());
                        s.written += written;
                    });
                    // after an outage or a rebuild (BIOMERO's `reset_tables` drops the
                    // views) the tables are made again before the next try
                    if let Some(c) = self.current.as_mut() {
                        c.3 = false;
                    }
                    return BACKOFF;
                }
            }
        }
        if self.said.take().is_some() {
            tracing::info!("BIOMERO's event store is written again");
        }
        self.set(|s| {
            s.error = None;
            s.last_ok = Some(Utc::now());
            s.written += written;
        });
        if full {
            Duration::ZERO
        } else {
            self.scan.all_written();
            POLL
        }
    }
}

/// Runs until `shutdown`: follows the log and writes it into BIOMERO's store. A round cut
/// short by the shutdown leaves nothing half-written (each run is one transaction).
pub async fn run(rt: Runtime, status: SharedStatus, shutdown: CancellationToken) {
    let queue = loop {
        match rt.store.identity().await {
            Ok(q) => break q,
            Err(e) => {
                set(&status, |s| s.error = Some(format!("the queue: {e}")));
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(BACKOFF) => {}
                }
            }
        }
    };
    let mut w = Writer {
        rt,
        status,
        queue,
        current: None,
        scan: ScanStart::default(),
        said: None,
    };
    loop {
        let wait = tokio::select! {
            () = shutdown.cancelled() => return,
            wait = w.round() => wait,
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}
