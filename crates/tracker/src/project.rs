//! The projections of BIOMERO's four followers (`biomero/views.py`, 2.8.3 and
//! 2.9.0b15: [`Rules`]), ported rule for rule, for the events of one workflow run.
//!
//! Each follower keeps in-memory state and writes a view row when (and only
//! when) its Python handler calls `update_view_table`, so [`Projections::apply`]
//! folds one event into the same state and returns the same writes:
//!
//! - `WorkflowProgress` → `biomero_workflow_progress_view` (status from the
//!   task's name, `NN%` progress interpolated between 50 and 90 for a job),
//! - `WorkflowAnalytics` → `biomero_task_execution`,
//! - `JobAccounting` → `biomero_job_view`,
//! - `JobProgress` → `biomero_job_progress_view`.
//!
//! The job progress follower keys its state by Slurm job id across runs; its
//! writes are therefore upserts that keep the other column of an existing row
//! ([`RowWrite::JobStatus`], [`RowWrite::JobProgress`]), which is what its
//! state holds when it has seen every earlier event.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use uuid::Uuid;

use crate::event::{Kind, TrackedEvent};

/// Which of BIOMERO's followers run (`[ANALYTICS]` `enable_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enabled {
    /// `enable_job_accounting`: `biomero_job_view`.
    pub job_accounting: bool,
    /// `enable_job_progress`: `biomero_job_progress_view` and `biomero_workflow_progress_view`.
    pub job_progress: bool,
    /// `enable_workflow_analytics`: `biomero_task_execution`.
    pub workflow_analytics: bool,
}

impl Enabled {
    /// Every follower, BIOMERO's default.
    pub const ALL: Enabled = Enabled {
        job_accounting: true,
        job_progress: true,
        workflow_analytics: true,
    };
}

/// Which BIOMERO's followers the views are projected as.
///
/// 2.9 added, for runs that a process other than their creator executes
/// (`biomero/detached.py`): a view row on `TaskAdded`, the stage and start time
/// on `TaskStarted`, the batched run script counted as the run script, and a
/// detached launcher's `CLAIMED` status kept out of the run's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rules {
    /// biomero 2.8.
    #[default]
    V2_8,
    /// biomero 2.9 (detached runs).
    V2_9,
}

/// The marker key of a detached launcher task's params (`biomero.detached.LAUNCHER_MARKER`).
pub const LAUNCHER_MARKER: &str = "_biomero_detached_launcher";
/// The status a supervisor claims a launcher with (`biomero.detached.CLAIMED`).
pub const CLAIMED: &str = "CLAIMED";
/// The scripts that queue detached runs (`biomero.detached.LAUNCHER_TASK_NAMES`).
pub const LAUNCHER_TASK_NAMES: [&str; 2] =
    ["SLURM_Run_Workflow.py", "SLURM_Run_Workflow_Batched.py"];

/// Whether a task of this name and params is a detached launcher (`is_launcher_task`).
pub fn is_launcher(task_name: &str, params: &serde_json::Value) -> bool {
    LAUNCHER_TASK_NAMES.contains(&task_name) && params.get(LAUNCHER_MARKER).is_some()
}

/// A row of `biomero_workflow_progress_view`, written whole (SQLAlchemy `merge`).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowProgressRow {
    /// The run.
    pub workflow_id: Uuid,
    /// `INITIALIZING`, `TRANSFERRING`, …, `JOB_<state>`, `DONE`, `FAILED`.
    pub status: String,
    /// `NN%`.
    pub progress: String,
    /// OMERO user id.
    pub user: i64,
    /// OMERO group id.
    pub group: i64,
    /// The run's name.
    pub name: String,
    /// The last task added.
    pub task: Option<String>,
    /// The first task that is not BIOMERO's own plumbing (the workflow).
    pub main_task_name: Option<String>,
    /// When the run was initiated (UTC).
    pub start_time: NaiveDateTime,
}

/// A row of `biomero_task_execution`.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskExecutionRow {
    /// The task.
    pub task_id: Uuid,
    /// Its name.
    pub task_name: String,
    /// Its version.
    pub task_version: String,
    /// OMERO user id, once the task is known to belong to a run.
    pub user_id: Option<i64>,
    /// OMERO group id, likewise.
    pub group_id: Option<i64>,
    /// `CREATED`, then the last status.
    pub status: String,
    /// When the task was created (UTC).
    pub start_time: NaiveDateTime,
    /// When it completed or failed; `None` keeps what the row has.
    pub end_time: Option<NaiveDateTime>,
    /// Why it failed; `None` keeps what the row has.
    pub error_type: Option<String>,
}

/// One write into a view table.
#[derive(Debug, Clone, PartialEq)]
pub enum RowWrite {
    /// Upsert the whole row.
    WorkflowProgress(WorkflowProgressRow),
    /// Insert, or update all but a `None` end time and error.
    TaskExecution(TaskExecutionRow),
    /// Upsert `biomero_job_view`.
    Job {
        /// Slurm job id.
        job: i64,
        /// OMERO user id.
        user: i64,
        /// OMERO group id.
        group: i64,
        /// The job's task.
        task_id: Uuid,
    },
    /// `biomero_job_progress_view`: set the status (a new row has no progress).
    JobStatus {
        /// Slurm job id.
        job: i64,
        /// Its state.
        status: String,
    },
    /// `biomero_job_progress_view`: set the progress (a new row's status is `UNKNOWN`).
    JobProgress {
        /// Slurm job id.
        job: i64,
        /// `NN%`.
        progress: String,
    },
}

#[derive(Debug, Clone)]
struct Run {
    user: i64,
    group: i64,
    name: String,
    status: String,
    progress: String,
    task: Option<String>,
    task_progress: Option<String>,
    start_time: NaiveDateTime,
}

#[derive(Debug, Clone, Default)]
struct TaskInfo {
    name: Option<String>,
    version: Option<String>,
    workflow: Option<Uuid>,
    created: Option<NaiveDateTime>,
    status: Option<String>,
    end_time: Option<NaiveDateTime>,
    error_type: Option<String>,
    job: Option<String>,
    launcher: bool,
}

/// The followers' state over the events of one run.
#[derive(Debug, Clone)]
pub struct Projections {
    enabled: Enabled,
    rules: Rules,
    runs: BTreeMap<Uuid, Run>,
    /// In creation order, as the Python dicts iterate.
    tasks: Vec<(Uuid, TaskInfo)>,
}

/// `workflow_status` of `biomero/constants.py`, as `getattr(wfs, status, status)` reads it.
fn workflow_status_attr(status: &str) -> String {
    match status {
        "INITIALIZING" | "TRANSFERRING" | "CONVERTING" | "RETRIEVING" | "IMPORTING"
        | "IMPORTED" | "POSTPROCESSING" | "DONE" | "FAILED" | "RUNNING" => status.to_owned(),
        "JOB_STATUS" => "JOB_".to_owned(),
        other => other.to_owned(),
    }
}

/// Python's `f"{x}%"` of a float: `repr`, which keeps `.0` on whole numbers.
fn python_percent(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e16 {
        format!("{x:.1}%")
    } else {
        format!("{x}%")
    }
}

/// The run's status and progress after a task's `StatusUpdated`, as `WorkflowProgress` derives it.
fn stage(
    rules: Rules,
    task_name: &str,
    status: &str,
    task_progress: Option<&str>,
) -> (String, String) {
    let name = task_name.to_lowercase();
    let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    if name == "_slurm_image_transfer.py" {
        s("TRANSFERRING", "5%")
    } else if name.starts_with("convert_") {
        s("CONVERTING", "25%")
    } else if name == "slurm_get_results.py" {
        if status == "POSTPROCESSING" {
            s("POSTPROCESSING", "95%")
        } else {
            s("RETRIEVING", "90%")
        }
    } else if name == "slurm_import_results.py" {
        let p = if status == "POSTPROCESSING" {
            "95%"
        } else {
            "90%"
        };
        (workflow_status_attr(status), p.to_owned())
    } else if name == "slurm_run_workflow.py"
        || (rules == Rules::V2_9 && name == "slurm_run_workflow_batched.py")
    {
        s("RUNNING", "50%")
    } else {
        let mut progress = "50%".to_owned();
        if let Some(p) = task_progress.filter(|p| !p.is_empty())
            && let Ok(current) = p.trim_matches('%').trim().parse::<i64>()
        {
            #[allow(clippy::cast_precision_loss)]
            let v = 50.0 + ((current as f64 / 100.0) * (90.0 - 50.0));
            progress = python_percent(v);
        }
        (format!("JOB_{status}"), progress)
    }
}

/// The run's status and progress when a task starts, as 2.9's `WorkflowProgress` sets them.
fn started(task_name: &str) -> (String, String) {
    let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    match task_name.to_lowercase().as_str() {
        "_slurm_image_transfer.py" => s("TRANSFERRING", "5%"),
        n if n.starts_with("convert_") || n == "slurm_remote_conversion.py" => {
            s("CONVERTING", "25%")
        }
        "slurm_get_results.py" => s("RETRIEVING", "90%"),
        "slurm_import_results.py" => s("IMPORTING", "90%"),
        "slurm_run_workflow.py" | "slurm_run_workflow_batched.py" => s("RUNNING", "50%"),
        _ => s("JOB_RUNNING", "50%"),
    }
}

/// Whether `WorkflowProgress` counts a task as BIOMERO's plumbing rather than the workflow.
fn is_plumbing(task_name: &str) -> bool {
    let n = task_name.to_lowercase();
    n.starts_with("_slurm_") || n.starts_with("slurm_") || n.starts_with("convert_")
}

impl Projections {
    /// No events seen yet; BIOMERO 2.8's rules.
    pub fn new(enabled: Enabled) -> Self {
        Self::with_rules(enabled, Rules::V2_8)
    }

    /// No events seen yet, projecting as `rules`.
    pub fn with_rules(enabled: Enabled, rules: Rules) -> Self {
        Projections {
            enabled,
            rules,
            runs: BTreeMap::new(),
            tasks: Vec::new(),
        }
    }

    fn task_mut(&mut self, id: Uuid) -> Option<&mut TaskInfo> {
        self.tasks
            .iter_mut()
            .find(|(t, _)| *t == id)
            .map(|(_, i)| i)
    }

    fn task(&self, id: Uuid) -> Option<&TaskInfo> {
        self.tasks.iter().find(|(t, _)| *t == id).map(|(_, i)| i)
    }

    fn progress_row(&self, wf: Uuid) -> Option<RowWrite> {
        let run = self.runs.get(&wf)?;
        let main = self
            .tasks
            .iter()
            .filter(|(_, i)| i.workflow == Some(wf))
            .filter_map(|(_, i)| i.name.clone())
            .find(|n| !is_plumbing(n))
            .or_else(|| run.task.clone());
        Some(RowWrite::WorkflowProgress(WorkflowProgressRow {
            workflow_id: wf,
            status: run.status.clone(),
            progress: run.progress.clone(),
            user: run.user,
            group: run.group,
            name: run.name.clone(),
            task: run.task.clone(),
            main_task_name: main,
            start_time: run.start_time,
        }))
    }

    fn execution_row(&self, task: Uuid) -> Option<RowWrite> {
        let info = self.task(task)?;
        let run = info.workflow.and_then(|w| self.runs.get(&w));
        Some(RowWrite::TaskExecution(TaskExecutionRow {
            task_id: task,
            task_name: info.name.clone()?,
            task_version: info.version.clone().unwrap_or_default(),
            user_id: run.map(|r| r.user),
            group_id: run.map(|r| r.group),
            status: info.status.clone()?,
            start_time: info.created?,
            end_time: info.end_time,
            error_type: info.error_type.clone(),
        }))
    }

    /// Folds one event in and returns the rows BIOMERO's followers write for it, in their order.
    pub fn apply(&mut self, e: &TrackedEvent) -> Vec<RowWrite> {
        let at = e.timestamp().naive_utc();
        let id = e.originator;
        let en = self.enabled;
        let mut out = Vec::new();
        match &e.kind {
            Kind::WorkflowInitiated {
                name, user, group, ..
            } => {
                self.runs.insert(
                    id,
                    Run {
                        user: *user,
                        group: *group,
                        name: name.clone(),
                        status: "INITIALIZING".into(),
                        progress: "0%".into(),
                        task: None,
                        task_progress: None,
                        start_time: at,
                    },
                );
                if en.job_progress {
                    out.extend(self.progress_row(id));
                }
            }
            Kind::TaskCreated {
                task_name,
                task_version,
                params,
                ..
            } => {
                let launcher = is_launcher(task_name, params);
                if let Some(info) = self.task_mut(id) {
                    info.name = Some(task_name.clone());
                    info.version = Some(task_version.clone());
                    info.created = Some(at);
                    info.status = Some("CREATED".into());
                    info.launcher = launcher;
                } else {
                    self.tasks.push((
                        id,
                        TaskInfo {
                            name: Some(task_name.clone()),
                            version: Some(task_version.clone()),
                            created: Some(at),
                            status: Some("CREATED".into()),
                            launcher,
                            ..TaskInfo::default()
                        },
                    ));
                }
                if en.workflow_analytics {
                    out.extend(self.execution_row(id));
                }
            }
            Kind::TaskAdded { task_id } => {
                let name = if let Some(info) = self.task_mut(*task_id) {
                    info.workflow = Some(id);
                    info.name.clone()
                } else {
                    self.tasks.push((
                        *task_id,
                        TaskInfo {
                            workflow: Some(id),
                            ..TaskInfo::default()
                        },
                    ));
                    None
                };
                let known = name.is_some();
                if let (Some(run), Some(name)) = (self.runs.get_mut(&id), name) {
                    run.task = Some(name);
                }
                if self.rules == Rules::V2_9 {
                    if en.job_progress {
                        out.extend(self.progress_row(id));
                    }
                    if en.workflow_analytics && known {
                        out.extend(self.execution_row(*task_id));
                    }
                }
            }
            Kind::JobIdAdded { job_id } => {
                let workflow = self.task_mut(id).and_then(|info| {
                    info.job = Some(job_id.clone());
                    info.workflow
                });
                if en.job_accounting
                    && let Some(run) = workflow.and_then(|w| self.runs.get(&w))
                    && let Ok(job) = job_id.trim().parse::<i64>()
                {
                    out.push(RowWrite::Job {
                        job,
                        user: run.user,
                        group: run.group,
                        task_id: id,
                    });
                }
            }
            Kind::StatusUpdated { status } => {
                let rules = self.rules;
                let Some(info) = self.task_mut(id) else {
                    return out;
                };
                info.status = Some(status.clone());
                let (workflow, name, job) = (info.workflow, info.name.clone(), info.job.clone());
                // 2.9: a launcher's claim is the supervisor's bookkeeping, not a stage
                let claim = rules == Rules::V2_9 && info.launcher && status == CLAIMED;
                if en.job_progress {
                    if let Some(wf) = workflow
                        && let Some(name) = name
                        && !claim
                        && let Some(run) = self.runs.get_mut(&wf)
                    {
                        let (s, p) = stage(self.rules, &name, status, run.task_progress.as_deref());
                        run.status = s;
                        run.progress = p;
                        out.extend(self.progress_row(wf));
                    }
                    if let Some(job) = job.and_then(|j| j.trim().parse::<i64>().ok()) {
                        out.push(RowWrite::JobStatus {
                            job,
                            status: status.clone(),
                        });
                    }
                }
                if en.workflow_analytics {
                    out.extend(self.execution_row(id));
                }
            }
            Kind::ProgressUpdated { progress } => {
                let Some(info) = self.task_mut(id) else {
                    return out;
                };
                let (workflow, job) = (info.workflow, info.job.clone());
                if en.job_progress {
                    if let Some(wf) = workflow
                        && let Some(run) = self.runs.get_mut(&wf)
                    {
                        run.task_progress = Some(progress.clone());
                        out.extend(self.progress_row(wf));
                    }
                    if let Some(job) = job.and_then(|j| j.trim().parse::<i64>().ok()) {
                        out.push(RowWrite::JobProgress {
                            job,
                            progress: progress.clone(),
                        });
                    }
                }
            }
            Kind::TaskCompleted { .. } => {
                if let Some(info) = self.task_mut(id) {
                    info.end_time = Some(at);
                    if en.workflow_analytics {
                        out.extend(self.execution_row(id));
                    }
                }
            }
            Kind::TaskFailed { error_message } => {
                if let Some(info) = self.task_mut(id) {
                    info.end_time = Some(at);
                    info.error_type = Some(error_message.clone());
                    if en.workflow_analytics {
                        out.extend(self.execution_row(id));
                    }
                }
            }
            Kind::WorkflowCompleted => {
                if let Some(run) = self.runs.get_mut(&id) {
                    run.status = "DONE".into();
                    run.progress = "100%".into();
                    if en.job_progress {
                        out.extend(self.progress_row(id));
                    }
                }
            }
            Kind::WorkflowFailed { .. } => {
                if let Some(run) = self.runs.get_mut(&id) {
                    run.status = "FAILED".into();
                    if en.job_progress {
                        out.extend(self.progress_row(id));
                    }
                }
            }
            Kind::TaskStarted if self.rules == Rules::V2_9 => {
                let Some(info) = self.task_mut(id) else {
                    return out;
                };
                info.created = Some(at);
                let (workflow, name) = (info.workflow, info.name.clone());
                if en.job_progress
                    && let Some(wf) = workflow
                    && let Some(name) = name
                    && let Some(run) = self.runs.get_mut(&wf)
                {
                    let (s, p) = started(&name);
                    run.task = Some(name);
                    run.status = s;
                    run.progress = p;
                    out.extend(self.progress_row(wf));
                }
                if en.workflow_analytics {
                    out.extend(self.execution_row(id));
                }
            }
            Kind::WorkflowStarted | Kind::TaskStarted | Kind::ResultAdded { .. } => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeZone, Utc};

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_780_000_000 + s, 0)
            .single()
            .expect("valid")
    }

    fn ev(originator: Uuid, version: i64, s: i64, kind: Kind) -> TrackedEvent {
        TrackedEvent {
            originator,
            version,
            at: t(s),
            kind,
        }
    }

    #[test]
    fn progress_is_written_as_python_formats_a_float() {
        assert_eq!(python_percent(70.0), "70.0%");
        assert_eq!(python_percent(67.2), "67.2%");
        // every job progress, as Python 3 prints `f"{50 + ((v / 100) * (90 - 50))}%"`
        let python = [
            "50.0%",
            "50.4%",
            "50.8%",
            "51.2%",
            "51.6%",
            "52.0%",
            "52.4%",
            "52.8%",
            "53.2%",
            "53.6%",
            "54.0%",
            "54.4%",
            "54.8%",
            "55.2%",
            "55.6%",
            "56.0%",
            "56.4%",
            "56.8%",
            "57.2%",
            "57.6%",
            "58.0%",
            "58.4%",
            "58.8%",
            "59.2%",
            "59.6%",
            "60.0%",
            "60.4%",
            "60.8%",
            "61.2%",
            "61.6%",
            "62.0%",
            "62.4%",
            "62.8%",
            "63.2%",
            "63.6%",
            "64.0%",
            "64.4%",
            "64.8%",
            "65.2%",
            "65.6%",
            "66.0%",
            "66.4%",
            "66.8%",
            "67.2%",
            "67.6%",
            "68.0%",
            "68.4%",
            "68.8%",
            "69.2%",
            "69.6%",
            "70.0%",
            "70.4%",
            "70.8%",
            "71.2%",
            "71.6%",
            "72.0%",
            "72.4%",
            "72.8%",
            "73.2%",
            "73.6%",
            "74.0%",
            "74.4%",
            "74.8%",
            "75.2%",
            "75.6%",
            "76.0%",
            "76.4%",
            "76.8%",
            "77.2%",
            "77.6%",
            "78.0%",
            "78.4%",
            "78.8%",
            "79.2%",
            "79.6%",
            "80.0%",
            "80.4%",
            "80.8%",
            "81.2%",
            "81.6%",
            "82.0%",
            "82.4%",
            "82.8%",
            "83.19999999999999%",
            "83.6%",
            "84.0%",
            "84.4%",
            "84.8%",
            "85.2%",
            "85.6%",
            "86.0%",
            "86.4%",
            "86.80000000000001%",
            "87.2%",
            "87.6%",
            "88.0%",
            "88.4%",
            "88.8%",
            "89.2%",
            "89.6%",
            "90.0%",
        ];
        for (v, want) in python.iter().enumerate() {
            let (_, got) = stage(Rules::V2_8, "cellpose", "RUNNING", Some(&format!("{v}%")));
            assert_eq!(&got, want, "progress {v}%");
        }
    }

    #[test]
    fn a_job_run_projects_as_biomeros_followers_do() {
        let wf = Uuid::from_u128(1);
        let transfer = Uuid::from_u128(2);
        let job = Uuid::from_u128(3);
        let mut p = Projections::new(Enabled::ALL);
        let init = p.apply(&ev(
            wf,
            0,
            0,
            Kind::WorkflowInitiated {
                name: "Slurm Workflow".into(),
                description: String::new(),
                user: 52,
                group: 3,
            },
        ));
        assert!(
            matches!(&init[..], [RowWrite::WorkflowProgress(r)] if r.status == "INITIALIZING" && r.progress == "0%" && r.main_task_name.is_none())
        );
        let created = p.apply(&ev(
            transfer,
            0,
            1,
            Kind::TaskCreated {
                workflow_id: wf,
                task_name: "_SLURM_Image_Transfer.py".into(),
                task_version: "2.8.2".into(),
                input_data: serde_json::json!([]),
                params: serde_json::json!({}),
            },
        ));
        // analytics knows no run for the task yet: no user, no group
        assert!(
            matches!(&created[..], [RowWrite::TaskExecution(r)] if r.user_id.is_none() && r.status == "CREATED")
        );
        assert!(
            p.apply(&ev(wf, 1, 1, Kind::TaskAdded { task_id: transfer }))
                .is_empty()
        );
        let status = p.apply(&ev(
            transfer,
            1,
            2,
            Kind::StatusUpdated {
                status: "TRANSFERRING".into(),
            },
        ));
        assert!(
            matches!(&status[..], [RowWrite::WorkflowProgress(w), RowWrite::TaskExecution(x)]
            if w.status == "TRANSFERRING" && w.progress == "5%" && w.task.as_deref() == Some("_SLURM_Image_Transfer.py")
               && w.main_task_name.as_deref() == Some("_SLURM_Image_Transfer.py") && x.user_id == Some(52))
        );
        p.apply(&ev(
            job,
            0,
            3,
            Kind::TaskCreated {
                workflow_id: wf,
                task_name: "cellpose".into(),
                task_version: "v1".into(),
                input_data: serde_json::json!({}),
                params: serde_json::json!({}),
            },
        ));
        p.apply(&ev(wf, 2, 3, Kind::TaskAdded { task_id: job }));
        let added = p.apply(&ev(
            job,
            1,
            4,
            Kind::JobIdAdded {
                job_id: "17".into(),
            },
        ));
        assert_eq!(
            added,
            vec![RowWrite::Job {
                job: 17,
                user: 52,
                group: 3,
                task_id: job
            }]
        );
        let prog = p.apply(&ev(
            job,
            2,
            5,
            Kind::ProgressUpdated {
                progress: "43%".into(),
            },
        ));
        assert!(
            matches!(&prog[..], [RowWrite::WorkflowProgress(w), RowWrite::JobProgress { job: 17, .. }]
            if w.status == "TRANSFERRING" && w.main_task_name.as_deref() == Some("cellpose"))
        );
        let running = p.apply(&ev(
            job,
            3,
            6,
            Kind::StatusUpdated {
                status: "RUNNING".into(),
            },
        ));
        assert!(
            matches!(&running[0], RowWrite::WorkflowProgress(w) if w.status == "JOB_RUNNING" && w.progress == "67.2%")
        );
        assert!(
            matches!(&running[1], RowWrite::JobStatus { job: 17, status } if status == "RUNNING")
        );
        let failed = p.apply(&ev(
            wf,
            3,
            7,
            Kind::WorkflowFailed {
                error_message: "x".into(),
            },
        ));
        assert!(
            matches!(&failed[..], [RowWrite::WorkflowProgress(w)] if w.status == "FAILED" && w.progress == "67.2%")
        );
    }

    #[test]
    fn disabled_followers_write_nothing() {
        let wf = Uuid::from_u128(1);
        let mut p = Projections::new(Enabled {
            job_accounting: false,
            job_progress: false,
            workflow_analytics: false,
        });
        let w = p.apply(&ev(
            wf,
            0,
            0,
            Kind::WorkflowInitiated {
                name: "n".into(),
                description: String::new(),
                user: 1,
                group: 1,
            },
        ));
        assert!(w.is_empty());
    }

    #[test]
    fn biomero_2_9_keeps_a_claim_out_of_the_progress_and_shows_each_stage_as_it_starts() {
        let (wf, launcher, convert) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let mut old = Projections::new(Enabled::ALL);
        let mut new = Projections::with_rules(Enabled::ALL, Rules::V2_9);
        let run = ev(
            wf,
            1,
            0,
            Kind::WorkflowInitiated {
                name: "Slurm Workflow".into(),
                description: String::new(),
                user: 7,
                group: 5,
            },
        );
        let created = |task, name: &str, params| {
            ev(
                task,
                1,
                1,
                Kind::TaskCreated {
                    workflow_id: wf,
                    task_name: name.into(),
                    task_version: "2.9".into(),
                    input_data: serde_json::json!([1]),
                    params,
                },
            )
        };
        let status = |task, s: &str| ev(task, 2, 2, Kind::StatusUpdated { status: s.into() });
        let events = [
            run,
            created(
                launcher,
                "SLURM_Run_Workflow_Batched.py",
                serde_json::json!({LAUNCHER_MARKER: "2.9"}),
            ),
            ev(wf, 2, 1, Kind::TaskAdded { task_id: launcher }),
        ];
        for e in &events {
            old.apply(e);
            new.apply(e);
        }
        let progress = |w: &[RowWrite]| {
            w.iter().find_map(|r| match r {
                RowWrite::WorkflowProgress(p) => Some((p.status.clone(), p.progress.clone())),
                _ => None,
            })
        };
        // 2.8 projects the claim as a stage of the run; 2.9 leaves the run as it was
        assert_eq!(
            progress(&old.apply(&status(launcher, CLAIMED))),
            Some(("JOB_CLAIMED".into(), "50%".into()))
        );
        let w = new.apply(&status(launcher, CLAIMED));
        assert_eq!(progress(&w), None);
        assert!(
            matches!(&w[..], [RowWrite::TaskExecution(t)] if t.status == CLAIMED),
            "{w:?}"
        );
        // 2.9 counts the batched script as the run script
        assert_eq!(
            progress(&new.apply(&status(launcher, "RUNNING"))),
            Some(("RUNNING".into(), "50%".into()))
        );
        // a task's start shows its stage, and TaskAdded writes the run's row
        new.apply(&created(
            convert,
            "CONVERT_OMERO_TO_ZARR",
            serde_json::json!({}),
        ));
        let added = new.apply(&ev(wf, 3, 3, Kind::TaskAdded { task_id: convert }));
        assert!(progress(&added).is_some(), "{added:?}");
        let started = new.apply(&ev(convert, 2, 4, Kind::TaskStarted));
        assert_eq!(
            progress(&started),
            Some(("CONVERTING".into(), "25%".into()))
        );
        assert!(old.apply(&ev(convert, 2, 4, Kind::TaskStarted)).is_empty());
    }
}
