//! A submission's history as one BIOMERO `WorkflowRun`.
//!
//! [`run_events`] is a pure function of the submission and its history: the
//! same history always gives the same events with the same ids, versions and
//! times, and a longer history only appends. That is what makes writing them
//! exactly once possible: whatever the store already holds is a prefix.
//!
//! Each stage is one BIOMERO `Task`, named as BIOMERO names the matching
//! stage, so OMERO.biomero's dashboards show it as they show BIOMERO's own:
//!
//! | our steps        | BIOMERO task                   | dashboard status          |
//! |------------------|--------------------------------|---------------------------|
//! | plan, stage      | `CONVERT_OMERO_TO_<TIFF\|ZARR>` | CONVERTING (25%)          |
//! | upload           | `_SLURM_Image_Transfer.py`     | TRANSFERRING (5%)         |
//! | submit … follow  | `SLURM_Run_Workflow.py`        | RUNNING (50%)             |
//! | the job          | the workflow, with its job id  | `JOB_<state>`, 50–90%     |
//! | collect          | `SLURM_Get_Results.py`         | RETRIEVING (90%)          |
//! | import           | `SLURM_Import_Results.py`      | IMPORTING, IMPORTED       |
//! | the end          | —                              | DONE (100%) or FAILED     |
//!
//! BIOMERO fixes each stage's percentage; we convert before we transfer, so
//! the bar reads 25% then 5% for the transfer, as BIOMERO's own numbers say.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use stage_config::InputMode;
use stage_store::{Event, Outcome, State, Submission};
use stage_tracker::{Kind, TrackedEvent};
use uuid::Uuid;

/// The name BIOMERO's own run script gives its WorkflowRuns (`params.name` of `SLURM_Run_Workflow.py`).
pub const RUN_NAME: &str = "Slurm Workflow";
/// BIOMERO's task name for the upload.
pub const TRANSFER_TASK: &str = "_SLURM_Image_Transfer.py";
/// BIOMERO's task name for the run script (submit and follow).
pub const RUN_TASK: &str = "SLURM_Run_Workflow.py";
/// BIOMERO's task name for downloading results.
pub const RESULTS_TASK: &str = "SLURM_Get_Results.py";
/// BIOMERO's task name for the import.
pub const IMPORT_TASK: &str = "SLURM_Import_Results.py";

/// The namespace of every id biomero-stage gives a BIOMERO aggregate.
const NAMESPACE: Uuid = Uuid::from_u128(0x6c1d_2b9e_4f0a_5d3c_9e71_0b2a_7d4f_e8c5);

/// The WorkflowRun of submission `id` in queue `queue`.
pub fn workflow_id(queue: &str, id: &str) -> Uuid {
    Uuid::new_v5(&NAMESPACE, format!("{queue}/{id}").as_bytes())
}

/// The WorkflowRun submission `s` is recorded in: the detached BIOMERO run it runs, else
/// its own ([`workflow_id`]).
pub fn workflow_run(queue: &str, s: &Submission) -> Uuid {
    detached_link(s).map_or_else(|| workflow_id(queue, &s.id), |d| d.workflow_id)
}

/// What the events are made of besides the history.
#[derive(Debug, Clone)]
pub struct RunFacts<'a> {
    /// The queue's identity (ids are unique per queue).
    pub queue: &'a str,
    /// The submission, as stored now.
    pub submission: &'a Submission,
    /// Its history, in order.
    pub history: &'a [Event],
    /// The workflow's version, as configured.
    pub workflow_version: &'a str,
    /// What is staged for it.
    pub mode: Option<InputMode>,
    /// This biomero-stage's version.
    pub stage_version: &'a str,
}

struct Builder {
    queue: String,
    submission: String,
    workflow: Uuid,
    versions: std::collections::BTreeMap<Uuid, i64>,
    out: Vec<TrackedEvent>,
    /// Tasks begun and not ended, innermost last.
    open: Vec<Uuid>,
    /// The run is BIOMERO's (a detached run): its own events are not ours to write.
    detached: bool,
}

impl Builder {
    fn push(&mut self, originator: Uuid, at: DateTime<Utc>, kind: Kind) {
        // BIOMERO's aggregates set `INITIAL_VERSION = 0` (eventsourcing's default is 1)
        let v = self.versions.entry(originator).or_insert(0);
        self.out.push(TrackedEvent {
            originator,
            version: *v,
            at,
            kind,
        });
        *v += 1;
    }

    fn task_id(&self, key: &str) -> Uuid {
        Uuid::new_v5(
            &NAMESPACE,
            format!("{}/{}/{key}", self.queue, self.submission).as_bytes(),
        )
    }

    /// TaskCreated, TaskAdded, TaskStarted and, when given, the status that tells the dashboard the stage.
    fn begin(
        &mut self,
        key: &str,
        at: DateTime<Utc>,
        name: &str,
        version: &str,
        io: (Value, Value),
        status: Option<&str>,
    ) -> Uuid {
        let task = self.task_id(key);
        self.push(
            task,
            at,
            Kind::TaskCreated {
                workflow_id: self.workflow,
                task_name: name.to_owned(),
                task_version: version.to_owned(),
                input_data: io.0,
                params: io.1,
            },
        );
        self.push(self.workflow, at, Kind::TaskAdded { task_id: task });
        self.push(task, at, Kind::TaskStarted);
        if let Some(s) = status {
            self.push(
                task,
                at,
                Kind::StatusUpdated {
                    status: s.to_owned(),
                },
            );
        }
        self.open.push(task);
        task
    }

    fn complete(&mut self, task: Uuid, at: DateTime<Utc>, result: String) {
        self.open.retain(|t| *t != task);
        self.push(task, at, Kind::TaskCompleted { result });
    }

    /// Every open task fails, innermost first, then the run.
    fn fail_all(
        &mut self,
        at: DateTime<Utc>,
        status: &str,
        job_status: Option<&str>,
        reason: &str,
    ) {
        let open: Vec<Uuid> = self.open.drain(..).rev().collect();
        for (n, task) in open.into_iter().enumerate() {
            let s = if n == 0 {
                job_status.unwrap_or(status)
            } else {
                status
            };
            if n == 0 {
                self.push(
                    task,
                    at,
                    Kind::StatusUpdated {
                        status: s.to_owned(),
                    },
                );
            }
            self.push(
                task,
                at,
                Kind::TaskFailed {
                    error_message: reason.to_owned(),
                },
            );
        }
        self.run_event(
            at,
            Kind::WorkflowFailed {
                error_message: reason.to_owned(),
            },
        );
    }

    /// An event of the run itself; a detached run's start and end are [`run_end`]'s.
    fn run_event(&mut self, at: DateTime<Utc>, kind: Kind) {
        if !self.detached {
            self.push(self.workflow, at, kind);
        }
    }
}

/// `params` with the Slurm job the results are of, under BIOMERO's key (`constants.results.
/// OUTPUT_SLURM_JOB_ID`): BIOMERO 2.9's `submitted_job` counts a job as done when an import
/// task of that job completed.
fn job_params(job: Option<(Uuid, u64)>, mut params: Value) -> Value {
    if let (Some((_, id)), Some(o)) = (job, params.as_object_mut()) {
        o.insert(SLURM_JOB_ID_PARAM.to_owned(), json!(id.to_string()));
    }
    params
}

/// BIOMERO's parameter naming the Slurm job of `SLURM_Get_Results.py` and the import.
pub const SLURM_JOB_ID_PARAM: &str = "SLURM Job Id";

fn step_result(e: &Event) -> String {
    format!("{} {} at {}", e.step, e.outcome.as_str(), e.at.to_rfc3339())
}

/// The detached BIOMERO run submission `s` runs, if it runs one.
pub fn detached_link(s: &Submission) -> Option<crate::intake::DetachedLink> {
    s.request
        .get("detached")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// The aggregates of `s`'s events that other writers append to too: a detached run and its
/// launcher (BIOMERO made them); none for a run of our own.
pub fn shared_aggregates(s: &Submission) -> Vec<Uuid> {
    detached_link(s).map_or_else(Vec::new, |d| vec![d.workflow_id, d.launcher])
}

/// The end of detached run `link` once every one of its submissions `subs` has ended:
/// the launcher task completes and the run with it, or both fail with the reasons.
pub fn run_end(
    link: crate::intake::DetachedLink,
    subs: &[Submission],
) -> Option<Vec<TrackedEvent>> {
    if subs.is_empty() || subs.iter().any(|s| !s.done) {
        return None;
    }
    let at = subs.iter().map(|s| s.updated_at).max()?;
    let failed: Vec<String> = subs
        .iter()
        .filter(|s| matches!(s.state, State::Failed | State::Cancelled))
        .map(|s| {
            format!(
                "{} ({}): {}",
                s.id,
                s.workflow,
                s.error
                    .as_deref()
                    .unwrap_or(if s.state == State::Cancelled {
                        "cancelled on request"
                    } else {
                        "failed"
                    })
            )
        })
        .collect();
    let ev = |originator, kind| TrackedEvent {
        originator,
        version: 0,
        at,
        kind,
    };
    Some(if failed.is_empty() {
        vec![
            ev(
                link.launcher,
                Kind::TaskCompleted {
                    result: format!("{} submission(s) of biomero-stage done", subs.len()),
                },
            ),
            ev(link.workflow_id, Kind::WorkflowCompleted),
        ]
    } else {
        let reason = failed.join("; ");
        vec![
            ev(
                link.launcher,
                Kind::TaskFailed {
                    error_message: reason.clone(),
                },
            ),
            ev(
                link.workflow_id,
                Kind::WorkflowFailed {
                    error_message: reason,
                },
            ),
        ]
    })
}

/// The BIOMERO events of a submission's history, in order.
pub fn run_events(f: &RunFacts<'_>) -> Vec<TrackedEvent> {
    let s = f.submission;
    let req = &s.request;
    let user = req
        .pointer("/user/id")
        .and_then(Value::as_i64)
        .unwrap_or(-1);
    let group = req
        .pointer("/user/group_id")
        .and_then(Value::as_i64)
        .unwrap_or(-1);
    let detached = detached_link(s);
    let inputs = req.get("inputs").cloned().unwrap_or(Value::Null);
    let parameters = req.get("parameters").cloned().unwrap_or_else(|| json!({}));
    let mut b = Builder {
        queue: f.queue.to_owned(),
        submission: s.id.clone(),
        workflow: detached.map_or_else(|| workflow_id(f.queue, &s.id), |d| d.workflow_id),
        versions: std::collections::BTreeMap::new(),
        out: Vec::new(),
        open: Vec::new(),
        detached: detached.is_some(),
    };
    let start = s.created_at;
    b.run_event(
        start,
        Kind::WorkflowInitiated {
            name: RUN_NAME.to_owned(),
            description: format!(
                "biomero-stage submission {} ({} {})\n{}",
                s.id, s.workflow, f.workflow_version, f.stage_version
            ),
            user,
            group,
        },
    );
    b.run_event(start, Kind::WorkflowStarted);
    let target = match f.mode {
        Some(InputMode::Tiff) => "TIFF",
        Some(InputMode::Zarr | InputMode::ZarrPlate) | None => "ZARR",
    };
    let convert = b.begin(
        "convert",
        start,
        &format!("CONVERT_OMERO_TO_{target}"),
        f.stage_version,
        (
            inputs.clone(),
            json!({ "mode": f.mode.map(|m| m.to_string()) }),
        ),
        Some("CONVERTING"),
    );
    let mut transfer = None;
    let mut run = None;
    let mut job: Option<(Uuid, u64)> = None;
    let mut results = None;
    let mut import = None;
    let mut last_job = (None::<String>, None::<u64>);
    for e in f.history {
        let at = e.at;
        match (e.outcome, e.step.as_str()) {
            (Outcome::Succeeded, "stage") => {
                b.complete(convert, at, step_result(e));
                transfer = Some(b.begin(
                    "transfer",
                    at,
                    TRANSFER_TASK,
                    f.stage_version,
                    (inputs.clone(), json!({})),
                    Some("TRANSFERRING"),
                ));
            }
            (Outcome::Succeeded, "upload") => {
                if let Some(t) = transfer {
                    b.complete(t, at, step_result(e));
                }
                if e.state == State::Uploaded && s.done && s.state == State::Uploaded {
                    // prep-only: the data waits on the cluster, the run ends here
                    b.run_event(at, Kind::WorkflowCompleted);
                } else {
                    run = Some(b.begin(
                        "run",
                        at,
                        RUN_TASK,
                        f.stage_version,
                        (inputs.clone(), parameters.clone()),
                        Some("RUNNING"),
                    ));
                }
            }
            (Outcome::Succeeded, "submit") => {
                let Some(id) = e.detail.get("job_id").and_then(Value::as_u64) else {
                    continue;
                };
                let t = b.begin(
                    "job",
                    at,
                    &s.workflow,
                    f.workflow_version,
                    (inputs.clone(), parameters.clone()),
                    None,
                );
                b.push(
                    t,
                    at,
                    Kind::JobIdAdded {
                        job_id: id.to_string(),
                    },
                );
                job = Some((t, id));
            }
            (Outcome::Progress, "follow") => {
                let Some((t, _)) = job else { continue };
                let state = e
                    .detail
                    .get("slurm_state")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let progress = e.detail.get("progress").and_then(Value::as_u64);
                let changed_progress = progress.is_some() && progress != last_job.1;
                if changed_progress && let Some(p) = progress {
                    b.push(
                        t,
                        at,
                        Kind::ProgressUpdated {
                            progress: format!("{p}%"),
                        },
                    );
                }
                if let Some(st) = &state
                    && (changed_progress || state != last_job.0)
                {
                    b.push(t, at, Kind::StatusUpdated { status: st.clone() });
                }
                last_job = (state.or(last_job.0), progress.or(last_job.1));
            }
            (Outcome::Succeeded, "follow") => {
                if let Some((t, id)) = job {
                    b.push(
                        t,
                        at,
                        Kind::StatusUpdated {
                            status: "COMPLETED".into(),
                        },
                    );
                    b.complete(t, at, format!("Job {id} is COMPLETED."));
                }
                if let Some(r) = run {
                    b.complete(r, at, step_result(e));
                }
                results = Some(b.begin(
                    "results",
                    at,
                    RESULTS_TASK,
                    f.stage_version,
                    (inputs.clone(), job_params(job, json!({}))),
                    Some("RETRIEVING"),
                ));
            }
            (Outcome::Succeeded, "collect") => {
                if let Some(r) = results {
                    b.complete(r, at, step_result(e));
                }
                import = Some(b.begin(
                    "import",
                    at,
                    IMPORT_TASK,
                    f.stage_version,
                    (
                        inputs.clone(),
                        job_params(job, json!({ "results": req.get("results") })),
                    ),
                    Some("IMPORTING"),
                ));
            }
            (Outcome::Succeeded, "import") => {
                if let Some(i) = import {
                    b.push(
                        i,
                        at,
                        Kind::StatusUpdated {
                            status: "IMPORTED".into(),
                        },
                    );
                    b.complete(i, at, step_result(e));
                }
                b.run_event(at, Kind::WorkflowCompleted);
            }
            (Outcome::Failed, _) => {
                let reason = s
                    .error
                    .clone()
                    .unwrap_or_else(|| format!("the {} step failed", e.step));
                let job_state = e.detail.get("slurm_state").and_then(Value::as_str);
                b.fail_all(at, "FAILED", job_state, &reason);
            }
            (Outcome::Cancelled, _) => {
                b.fail_all(at, "CANCELLED", None, "cancelled on request");
            }
            _ => {}
        }
    }
    b.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sub(done: bool, state: State, error: Option<&str>) -> Submission {
        let t = Utc.timestamp_opt(1_780_000_000, 0).single().expect("time");
        Submission {
            id: "run1-1".into(),
            workflow: "cellpose".into(),
            request: json!({"user": {"name": "alice", "group": "lab", "id": 52, "group_id": 3}, "inputs": {"omero": [{"type": "Image", "id": 1}]}, "parameters": {"diameter": 30}}),
            state,
            done,
            waiting_for: None,
            error: error.map(str::to_owned),
            attempts: 0,
            next_attempt_at: t,
            cancel_requested: false,
            data: json!({}),
            created_at: t,
            updated_at: t,
        }
    }

    fn ev(seq: i32, step: &str, outcome: Outcome, state: State, detail: Value) -> Event {
        Event {
            seq,
            step: step.into(),
            outcome,
            state,
            detail,
            at: Utc
                .timestamp_opt(1_780_000_000 + i64::from(seq), 0)
                .single()
                .expect("time"),
        }
    }

    fn history() -> Vec<Event> {
        vec![
            ev(1, "intake", Outcome::Accepted, State::Received, json!({})),
            ev(2, "plan", Outcome::Succeeded, State::Planned, json!({})),
            ev(3, "stage", Outcome::Succeeded, State::Staged, json!({})),
            ev(4, "upload", Outcome::Succeeded, State::Uploaded, json!({})),
            ev(
                5,
                "submit",
                Outcome::Succeeded,
                State::Submitted,
                json!({"job_id": 17}),
            ),
            ev(
                6,
                "follow",
                Outcome::Progress,
                State::Submitted,
                json!({"job_id": 17, "slurm_state": "RUNNING", "progress": 40}),
            ),
            ev(
                7,
                "follow",
                Outcome::Progress,
                State::Submitted,
                json!({"job_id": 17, "slurm_state": "RUNNING", "progress": 40}),
            ),
            ev(8, "follow", Outcome::Succeeded, State::Finished, json!({})),
            ev(
                9,
                "collect",
                Outcome::Succeeded,
                State::Collected,
                json!({}),
            ),
            ev(10, "import", Outcome::Succeeded, State::Imported, json!({})),
        ]
    }

    fn facts<'a>(s: &'a Submission, h: &'a [Event]) -> RunFacts<'a> {
        RunFacts {
            queue: "q",
            submission: s,
            history: h,
            workflow_version: "v1",
            mode: Some(InputMode::Tiff),
            stage_version: "0.1.0",
        }
    }

    #[test]
    fn a_longer_history_only_appends() {
        let s = sub(true, State::Imported, None);
        let h = history();
        let all = run_events(&facts(&s, &h));
        for n in 0..h.len() {
            let part = run_events(&facts(&s, &h[..n]));
            assert_eq!(part[..], all[..part.len()], "history of {n} events");
        }
        // versions count up per aggregate, from BIOMERO's INITIAL_VERSION 0
        let mut seen = std::collections::BTreeMap::new();
        for e in &all {
            let v = seen.entry(e.originator).or_insert(0);
            assert_eq!(e.version, *v);
            *v += 1;
        }
    }

    #[test]
    fn the_run_carries_omeros_ids_the_job_id_and_an_end() {
        let s = sub(true, State::Imported, None);
        let h = history();
        let all = run_events(&facts(&s, &h));
        assert!(matches!(
            &all[0].kind,
            Kind::WorkflowInitiated {
                user: 52,
                group: 3,
                ..
            }
        ));
        assert!(all.iter().any(|e| e.kind
            == Kind::JobIdAdded {
                job_id: "17".into()
            }));
        // the same progress twice is written once
        let progress = all
            .iter()
            .filter(|e| matches!(e.kind, Kind::ProgressUpdated { .. }))
            .count();
        assert_eq!(progress, 1);
        assert_eq!(all.last().map(|e| &e.kind), Some(&Kind::WorkflowCompleted));
        let names: Vec<&str> = all
            .iter()
            .filter_map(|e| match &e.kind {
                Kind::TaskCreated { task_name, .. } => Some(task_name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            names,
            [
                "CONVERT_OMERO_TO_TIFF",
                TRANSFER_TASK,
                RUN_TASK,
                "cellpose",
                RESULTS_TASK,
                IMPORT_TASK
            ]
        );
    }

    #[test]
    fn a_failed_job_fails_its_tasks_and_the_run_with_the_reason() {
        let s = sub(true, State::Failed, Some("job 17 ended FAILED (exit 1)"));
        let mut h = history()[..6].to_vec();
        h.push(ev(
            7,
            "follow",
            Outcome::Failed,
            State::Failed,
            json!({"job_id": 17, "slurm_state": "FAILED"}),
        ));
        let all = run_events(&facts(&s, &h));
        let tail: Vec<&Kind> = all.iter().rev().take(4).map(|e| &e.kind).collect();
        assert_eq!(
            tail,
            [
                &Kind::WorkflowFailed {
                    error_message: "job 17 ended FAILED (exit 1)".into()
                },
                &Kind::TaskFailed {
                    error_message: "job 17 ended FAILED (exit 1)".into()
                },
                &Kind::TaskFailed {
                    error_message: "job 17 ended FAILED (exit 1)".into()
                },
                &Kind::StatusUpdated {
                    status: "FAILED".into()
                },
            ]
        );
    }

    #[test]
    fn ids_differ_per_queue_and_submission() {
        assert_ne!(workflow_id("q", "a"), workflow_id("q", "b"));
        assert_ne!(workflow_id("q", "a"), workflow_id("r", "a"));
        assert_eq!(workflow_id("q", "a"), workflow_id("q", "a"));
    }
}
