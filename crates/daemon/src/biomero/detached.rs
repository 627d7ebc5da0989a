//! BIOMERO 2.9's detached runs, claimed from BIOMERO's event store and run as
//! our submissions.
//!
//! With `BIOMERO_DETACHED_WORKFLOWS=true`, BIOMERO's unchanged
//! `SLURM_Run_Workflow.py` (or `_Batched.py`) starts a `WorkflowRun`, records a
//! launcher task holding every script input, and returns
//! (`biomero/detached.py`). With `biomero_detached = true` this loop follows
//! `workflowtracker_events` for new launchers, claims each exactly once
//! ([`stage_tracker::Tracker::claim`]) and queues it through the same reading
//! of the script inputs as a run request from OMERO.biomero
//! ([`super::accept::queue_run`]), acting for the user and group BIOMERO
//! recorded with biomero-stage's own OMERO account. Progress goes into the
//! same `WorkflowRun` ([`super::mirror`]). A launcher this configuration cannot
//! run fails its run with the reason, visible in BIOMERO's dashboards.
//!
//! A daemon stopped between its claim and queueing the run finds its own claim
//! when it comes back and queues it then; once queued, a run resumes like any
//! submission, step by step, never submitting a second Slurm job.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use stage_config::Snapshot;
use stage_source::omero::UserSession;
use stage_tracker::launcher::Holder;
use stage_tracker::project::{LAUNCHER_MARKER, Rules};
use stage_tracker::{Claim, Kind, Launcher, TrackedEvent, Tracker, TrackerError};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::accept::{self, RunError};
use super::keys;
use super::translate::Script;
use crate::intake::DetachedLink;
use crate::runtime::Runtime;

/// How often new launchers are looked for.
const POLL: Duration = Duration::from_secs(2);
/// How long to wait after the store or OMERO failed.
const BACKOFF: Duration = Duration::from_secs(10);
/// Launchers read per round.
const BATCH: i64 = 200;

/// What the launcher loop is doing, for `/readyz`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// Whether detached runs are taken (`biomero_detached`).
    pub enabled: bool,
    /// Why none are taken although enabled.
    pub off: Option<String>,
    /// The last error, until a round succeeds.
    pub error: Option<String>,
    /// Launchers claimed by this daemon since start.
    pub claimed: u64,
    /// Launchers whose runs were refused (failed in BIOMERO with the reason).
    pub refused: u64,
    /// Launchers another supervisor had.
    pub taken_by_others: u64,
    /// When a round last looked at everything there was.
    pub last_ok: Option<DateTime<Utc>>,
}

/// The loop's status, shared with the admin endpoint.
pub type SharedStatus = Arc<Mutex<Status>>;

/// The run id of a launcher's submissions (`<run>-<n>`).
pub fn run_id(l: &Launcher) -> String {
    format!("biomero-{}", l.task.simple())
}

/// The keys of a launcher's params that are its own bookkeeping, not script inputs.
const BOOKKEEPING: [&str; 2] = ["workflows", LAUNCHER_MARKER];

/// A launcher's params, read back as the script's inputs: `(inputs, selected workflows,
/// derived values left out)`. The script records every input plus values it derived from
/// them; a key is an input when it is one of BIOMERO's fixed keys or belongs to a workflow
/// (`<wf>`, `<wf>_Version`, `<wf>_|_…`) of the launcher's `workflows` or of this
/// configuration. The rest is derived (`zipfile`, …) and named in the run's history.
pub fn launcher_inputs(
    params: &Value,
    config: &Snapshot,
) -> Result<(Map<String, Value>, Vec<String>, Vec<String>), String> {
    let Some(all) = params.as_object() else {
        return Err("the launcher's params are not an object of script inputs".into());
    };
    let workflows: Vec<String> = match all.get("workflows") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|w| {
                w.as_str()
                    .map(ToOwned::to_owned)
                    .ok_or_else(|| format!("`workflows` holds {w}, not a workflow name"))
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(format!("`workflows` is {other}, not a list of names")),
        None => return Err("the launcher has no `workflows`".into()),
    };
    let belongs = |key: &str, wf: &str| {
        key == wf
            || key
                .strip_prefix(wf)
                .is_some_and(|rest| rest == "_Version" || rest.starts_with(keys::PARAM_SEPARATOR))
    };
    let mut inputs = Map::new();
    let mut derived = Vec::new();
    for (k, v) in all {
        if BOOKKEEPING.contains(&k.as_str()) {
            continue;
        }
        let input = keys::FIXED.iter().any(|f| f.name == k)
            || workflows.iter().any(|w| belongs(k, w))
            || config.registry.workflows.keys().any(|w| belongs(k, w));
        if input {
            inputs.insert(k.clone(), v.clone());
        } else {
            derived.push(k.clone());
        }
    }
    Ok((inputs, workflows, derived))
}

/// Why a launcher could not be queued, and whether trying again may help.
enum Refusal {
    /// Its run fails with this reason.
    Permanent(String),
    /// OMERO or a store is unavailable: tried again later.
    Transient(String),
}

fn from_run_error(e: RunError) -> Refusal {
    match e {
        RunError::Unavailable(_) | RunError::Unchecked(_) => Refusal::Transient(e.to_string()),
        RunError::Enqueue(crate::intake::EnqueueError::Store(s)) => {
            Refusal::Transient(format!("the queue: {s}"))
        }
        other => Refusal::Permanent(other.to_string()),
    }
}

/// Queues the claimed launcher `l` of the run of `user` in `group`.
async fn queue(
    rt: &Runtime,
    l: &Launcher,
    user: i64,
    group: i64,
    config: &Snapshot,
) -> Result<accept::AcceptedRun, Refusal> {
    let s = &config.settings.settings;
    let script = Script::from_name(&l.script)
        .ok_or_else(|| Refusal::Permanent(format!("`{}` is not a run script", l.script)))?;
    let (inputs, workflows, derived) =
        launcher_inputs(&l.params, config).map_err(Refusal::Permanent)?;
    let (Some(url), Some(account)) = (&s.omero_url, &s.omero_user) else {
        return Err(Refusal::Transient(
            "omero_url and omero_user are not set: biomero-stage cannot look up the run's user in OMERO".into(),
        ));
    };
    let password = s
        .omero_password()
        .map_err(|e| Refusal::Transient(e.to_string()))?
        .ok_or_else(|| {
            Refusal::Transient("no OMERO password (omero_password_file) is set".into())
        })?;
    let timeout = Duration::from_secs(s.omero_timeout_secs);
    let session = UserSession::service(url, s.omero_server_id, account, &password, timeout)
        .await
        .map_err(|e| Refusal::Transient(e.to_string()))?;
    let session = session.acting_for(user, group).await.map_err(|e| match e {
        stage_source::omero::SessionError::Refused { reason } => {
            Refusal::Permanent(format!("the run's user {user} in group {group}: {reason}"))
        }
        other => Refusal::Transient(other.to_string()),
    })?;
    let mut notices = Vec::new();
    if !derived.is_empty() {
        notices.push(format!(
            "values the script derived were left out (biomero-stage derives its own): {}",
            derived.join(", ")
        ));
    }
    let run = run_id(l);
    let accepted = accept::queue_run(
        &session,
        &accept::Run {
            script,
            inputs: &inputs,
            id: &run,
            detached: Some(DetachedLink {
                workflow_id: l.workflow,
                launcher: l.task,
            }),
            notices,
            attended: false,
        },
        rt.on_cluster(),
        config,
        &rt.store,
    )
    .await
    .map_err(from_run_error)?;
    let mut queued: Vec<&str> = accepted
        .submissions
        .iter()
        .map(|(_, w, _)| w.as_str())
        .collect();
    queued.sort_unstable();
    queued.dedup();
    let mut asked: Vec<&str> = workflows.iter().map(String::as_str).collect();
    asked.sort_unstable();
    asked.dedup();
    if queued != asked {
        tracing::warn!(
            run,
            ?asked,
            ?queued,
            "the launcher's `workflows` differ from the workflows its inputs select"
        );
    }
    Ok(accepted)
}

/// Fails the launcher's run in BIOMERO's store with `reason`.
async fn fail_run(tracker: &Tracker, l: &Launcher, reason: &str) -> Result<(), TrackerError> {
    let at = Utc::now();
    let ev = |originator, kind| TrackedEvent {
        originator,
        version: 0,
        at,
        kind,
    };
    tracker
        .append_shared(
            &[
                ev(
                    l.task,
                    Kind::TaskFailed {
                        error_message: reason.to_owned(),
                    },
                ),
                ev(
                    l.workflow,
                    Kind::WorkflowFailed {
                        error_message: reason.to_owned(),
                    },
                ),
            ],
            &[l.task, l.workflow],
        )
        .await
        .map(|_| ())
}

/// The loop's state between rounds.
struct Loop {
    rt: Runtime,
    status: SharedStatus,
    claimant: String,
    /// The store in use (its URL) and a tracker for it.
    current: Option<(String, Tracker)>,
    /// Launchers up to this notification id are decided.
    after: i64,
}

impl Loop {
    fn set(&self, f: impl FnOnce(&mut Status)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    async fn round(&mut self) -> Duration {
        let config = self.rt.config.current();
        let enabled = config.settings.settings.biomero_detached;
        self.set(|s| s.enabled = enabled);
        if !enabled {
            self.current = None;
            return POLL;
        }
        let (url, followers) = match super::mirror::configured(&config.slurm) {
            Ok(c) => c,
            Err(why) => {
                self.set(|s| s.off = Some(why));
                self.current = None;
                return POLL;
            }
        };
        if !matches!(&self.current, Some((u, _)) if *u == url.to_string()) {
            match Tracker::new(url.clone(), followers) {
                Ok(t) => {
                    self.current = Some((url.to_string(), t.with_rules(Rules::V2_9)));
                    self.after = 0;
                }
                Err(e) => {
                    self.set(|s| s.error = Some(e.to_string()));
                    return BACKOFF;
                }
            }
        }
        self.set(|s| s.off = None);
        let Some((_, tracker)) = self.current.clone() else {
            return POLL;
        };
        let launchers = match tracker.launchers_after(self.after, BATCH).await {
            Ok(l) => l,
            Err(e) => {
                self.set(|s| s.error = Some(e.to_string()));
                return BACKOFF;
            }
        };
        let full = i64::try_from(launchers.len()).unwrap_or(i64::MAX) >= BATCH;
        for l in &launchers {
            match self.handle(&tracker, l, &config).await {
                Ok(()) => self.after = l.notification,
                Err(why) => {
                    tracing::warn!(launcher = %l.task, error = %why, "a detached run waits; tried again later");
                    self.set(|s| s.error = Some(why));
                    return BACKOFF;
                }
            }
        }
        self.set(|s| {
            s.error = None;
            s.last_ok = Some(Utc::now());
        });
        if full { Duration::ZERO } else { POLL }
    }

    /// Decides launcher `l`: claims and queues it, leaves it to its holder, or fails its run.
    /// `Err` when it must be looked at again (a store or OMERO is down).
    async fn handle(
        &mut self,
        tracker: &Tracker,
        l: &Launcher,
        config: &Snapshot,
    ) -> Result<(), String> {
        // the span is attached to the future, never entered across an `.await`: a guard held
        // over an await is dropped on whichever worker thread resumes the task, which corrupts
        // the span registry (it panicked a worker thread and stalled a submission in CI)
        let span =
            tracing::info_span!("detached_run", launcher = %l.task, workflow_run = %l.workflow);
        self.handle_in_span(tracker, l, config)
            .instrument(span)
            .await
    }

    /// [`Self::handle`], inside the launcher's span.
    async fn handle_in_span(
        &mut self,
        tracker: &Tracker,
        l: &Launcher,
        config: &Snapshot,
    ) -> Result<(), String> {
        let Some(run) = tracker.launcher_run(l).await.map_err(|e| e.to_string())? else {
            tracing::warn!(
                "the launcher's WorkflowRun is not in BIOMERO's store; it is left alone"
            );
            return Ok(());
        };
        if run.ended {
            return Ok(());
        }
        match &run.holder {
            Holder::Nobody => match tracker
                .claim(l, &self.claimant, Utc::now())
                .await
                .map_err(|e| e.to_string())?
            {
                Claim::Won => {
                    tracing::info!(
                        user = run.user,
                        group = run.group,
                        "claimed a detached BIOMERO run"
                    );
                    self.set(|s| s.claimed += 1);
                }
                Claim::Ours => {}
                Claim::Taken(_) => {
                    self.set(|s| s.taken_by_others += 1);
                    return Ok(());
                }
            },
            Holder::Named(n) if *n == self.claimant => {}
            Holder::Named(_) | Holder::Unnamed => return Ok(()),
        }
        let id = run_id(l);
        let queued = super::run_submissions(&self.rt.store, &id)
            .await
            .map_err(|e| format!("the queue: {e}"))?;
        if !queued.is_empty() {
            return Ok(());
        }
        match queue(&self.rt, l, run.user, run.group, config).await {
            Ok(a) => {
                tracing::info!(run = %a.run, user = %a.user, group = %a.group, submissions = a.submissions.len(), "detached BIOMERO run queued");
                Ok(())
            }
            Err(Refusal::Transient(why)) => Err(why),
            Err(Refusal::Permanent(why)) => {
                tracing::warn!(reason = %why, "a detached BIOMERO run was refused; its run fails with the reason");
                fail_run(tracker, l, &why)
                    .await
                    .map_err(|e| e.to_string())?;
                self.set(|s| s.refused += 1);
                Ok(())
            }
        }
    }
}

/// Runs until `shutdown`: follows BIOMERO's store for detached runs and queues them.
pub async fn run(rt: Runtime, status: SharedStatus, shutdown: CancellationToken) {
    let queue = loop {
        match rt.store.identity().await {
            Ok(q) => break q,
            Err(e) => {
                if let Ok(mut s) = status.lock() {
                    s.error = Some(format!("the queue: {e}"));
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(BACKOFF) => {}
                }
            }
        }
    };
    let mut l = Loop {
        rt,
        status,
        claimant: format!("biomero-stage {queue}"),
        current: None,
        after: 0,
    };
    loop {
        let wait = tokio::select! {
            () = shutdown.cancelled() => return,
            wait = l.round() => wait,
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn bookkeeping_and_derived_values_are_not_inputs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = crate::test_site::demo_snapshot(dir.path()).await;
        let params = json!({
            "Data_Type": "Image", "IDs": [1], "threshold": true, "threshold_Version": "v1",
            "threshold_|_level": 30, "threshold_zarr": false,
            "workflows": ["threshold"], LAUNCHER_MARKER: "2.9.0", "zipfile": "x.zip",
        });
        let (inputs, workflows, derived) = launcher_inputs(&params, &config).expect("read");
        assert_eq!(workflows, ["threshold"]);
        assert_eq!(derived, ["zipfile"]);
        assert!(inputs.contains_key("threshold_|_level") && inputs.contains_key("IDs"));
        assert!(inputs.contains_key("threshold_zarr"));
        assert!(!inputs.contains_key("workflows") && !inputs.contains_key(LAUNCHER_MARKER));
        // an unconfigured workflow the launcher names stays an input, so it is refused by name
        let params = json!({"Data_Type": "Image", "IDs": [1], "nope": true, "workflows": ["nope"]});
        let (inputs, _, derived) = launcher_inputs(&params, &config).expect("read");
        assert!(inputs.contains_key("nope") && derived.is_empty());
        assert!(launcher_inputs(&json!({"IDs": [1]}), &config).is_err());
        assert!(launcher_inputs(&json!({"workflows": [3]}), &config).is_err());
    }
}
