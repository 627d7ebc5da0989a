//! BIOMERO's domain events in eventsourcing's stored-event format.
//!
//! eventsourcing's `Mapper` stores an event as its class's topic
//! (`biomero.eventsourcing:Task.StatusUpdated`) and its attributes minus
//! `originator_id` and `originator_version`, encoded by `JSONTranscoder`:
//! compact JSON (`separators=(",", ":")`, `ensure_ascii=False`), UUIDs as
//! `{"_type_":"uuid_hex","_data_":<hex>}` and datetimes as
//! `{"_type_":"datetime_iso","_data_":<isoformat>}`. The attributes come in
//! the order the event's `__dict__` holds them: `timestamp`, then for a
//! `Created` event `originator_topic`, then the event's own fields in their
//! declared order. [`TrackedEvent::state`] writes exactly those bytes.

use chrono::{DateTime, SubsecRound, Timelike, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

/// The topic of BIOMERO's `WorkflowRun` aggregate.
pub const WORKFLOW_TOPIC: &str = "biomero.eventsourcing:WorkflowRun";
/// The topic of BIOMERO's `Task` aggregate.
pub const TASK_TOPIC: &str = "biomero.eventsourcing:Task";

/// What happened, as one of BIOMERO's `WorkflowRun` or `Task` events.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `WorkflowRun.WorkflowInitiated` (version 0 of a run: BIOMERO's `INITIAL_VERSION`).
    WorkflowInitiated {
        /// The run's name.
        name: String,
        /// Its description.
        description: String,
        /// OMERO user id (`-1` when unknown).
        user: i64,
        /// OMERO group id (`-1` when unknown).
        group: i64,
    },
    /// `WorkflowRun.TaskAdded`.
    TaskAdded {
        /// The task.
        task_id: Uuid,
    },
    /// `WorkflowRun.WorkflowStarted`.
    WorkflowStarted,
    /// `WorkflowRun.WorkflowCompleted`.
    WorkflowCompleted,
    /// `WorkflowRun.WorkflowFailed`.
    WorkflowFailed {
        /// Why.
        error_message: String,
    },
    /// `Task.TaskCreated` (version 0 of a task).
    TaskCreated {
        /// The run it belongs to.
        workflow_id: Uuid,
        /// BIOMERO's name for the stage (`_SLURM_Image_Transfer.py`, the workflow's name, …).
        task_name: String,
        /// Its version.
        task_version: String,
        /// What it works on.
        input_data: Value,
        /// Its parameters.
        params: Value,
    },
    /// `Task.JobIdAdded`.
    JobIdAdded {
        /// The Slurm job id.
        job_id: String,
    },
    /// `Task.StatusUpdated`.
    StatusUpdated {
        /// The task's status (a Slurm state for a job's task).
        status: String,
    },
    /// `Task.ProgressUpdated`.
    ProgressUpdated {
        /// `NN%`.
        progress: String,
    },
    /// `Task.ResultAdded` (BIOMERO's command results; read, never written here).
    ResultAdded {
        /// The result as stored.
        result: Value,
    },
    /// `Task.TaskStarted`.
    TaskStarted,
    /// `Task.TaskCompleted`.
    TaskCompleted {
        /// The result message.
        result: String,
    },
    /// `Task.TaskFailed`.
    TaskFailed {
        /// Why.
        error_message: String,
    },
}

impl Kind {
    /// The event class's name within its aggregate.
    pub fn class(&self) -> &'static str {
        match self {
            Kind::WorkflowInitiated { .. } => "WorkflowInitiated",
            Kind::TaskAdded { .. } => "TaskAdded",
            Kind::WorkflowStarted => "WorkflowStarted",
            Kind::WorkflowCompleted => "WorkflowCompleted",
            Kind::WorkflowFailed { .. } => "WorkflowFailed",
            Kind::TaskCreated { .. } => "TaskCreated",
            Kind::JobIdAdded { .. } => "JobIdAdded",
            Kind::StatusUpdated { .. } => "StatusUpdated",
            Kind::ProgressUpdated { .. } => "ProgressUpdated",
            Kind::ResultAdded { .. } => "ResultAdded",
            Kind::TaskStarted => "TaskStarted",
            Kind::TaskCompleted { .. } => "TaskCompleted",
            Kind::TaskFailed { .. } => "TaskFailed",
        }
    }

    /// The aggregate's topic.
    pub fn aggregate(&self) -> &'static str {
        match self {
            Kind::WorkflowInitiated { .. }
            | Kind::TaskAdded { .. }
            | Kind::WorkflowStarted
            | Kind::WorkflowCompleted
            | Kind::WorkflowFailed { .. } => WORKFLOW_TOPIC,
            _ => TASK_TOPIC,
        }
    }

    /// Whether it creates its aggregate (version 0).
    pub fn is_created(&self) -> bool {
        matches!(
            self,
            Kind::WorkflowInitiated { .. } | Kind::TaskCreated { .. }
        )
    }
}

/// One event of one aggregate, as BIOMERO's domain model has it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackedEvent {
    /// The aggregate (a `WorkflowRun` or a `Task`).
    pub originator: Uuid,
    /// Its position in the aggregate (0 for the created event: BIOMERO's aggregates set `INITIAL_VERSION = 0`).
    pub version: i64,
    /// When it happened (eventsourcing keeps microseconds).
    pub at: DateTime<Utc>,
    /// What happened.
    pub kind: Kind,
}

/// A row of `workflowtracker_events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The notification id (the store's global order).
    pub id: i64,
    /// The aggregate.
    pub originator_id: Uuid,
    /// The aggregate's version.
    pub originator_version: i64,
    /// The event class's topic.
    pub topic: String,
    /// The transcoded attributes.
    pub state: Vec<u8>,
}

/// Why a stored event could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The topic is not one of BIOMERO's WorkflowRun or Task events.
    #[error("event {id}: topic `{topic}` is not a BIOMERO WorkflowRun or Task event")]
    Topic {
        /// Notification id.
        id: i64,
        /// The topic.
        topic: String,
    },
    /// The state is not what the event class holds.
    #[error("event {id} ({topic}): {reason}")]
    State {
        /// Notification id.
        id: i64,
        /// The topic.
        topic: String,
        /// What is wrong.
        reason: String,
    },
}

/// `datetime.isoformat()` of a UTC datetime: microseconds only when not zero, `+00:00`.
pub fn python_isoformat(at: DateTime<Utc>) -> String {
    let at = at.trunc_subsecs(6);
    let micros = at.nanosecond() / 1000;
    if micros == 0 {
        at.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
    } else {
        format!("{}.{micros:06}+00:00", at.format("%Y-%m-%dT%H:%M:%S"))
    }
}

fn json_str(s: &str) -> String {
    Value::from(s).to_string()
}

fn uuid_value(u: Uuid) -> String {
    format!(r#"{{"_type_":"uuid_hex","_data_":"{}"}}"#, u.simple())
}

impl TrackedEvent {
    /// The stored topic: `<aggregate topic>.<event class>`.
    pub fn topic(&self) -> String {
        format!("{}.{}", self.kind.aggregate(), self.kind.class())
    }

    /// The time as eventsourcing keeps it (microseconds).
    pub fn timestamp(&self) -> DateTime<Utc> {
        self.at.trunc_subsecs(6)
    }

    /// The stored state, byte for byte as eventsourcing's `JSONTranscoder` encodes it.
    pub fn state(&self) -> Vec<u8> {
        let mut s = format!(
            r#"{{"timestamp":{{"_type_":"datetime_iso","_data_":"{}"}}"#,
            python_isoformat(self.at)
        );
        if self.kind.is_created() {
            s.push_str(&format!(
                r#","originator_topic":{}"#,
                json_str(self.kind.aggregate())
            ));
        }
        let mut field = |name: &str, value: String| {
            s.push_str(&format!(",{}:{value}", json_str(name)));
        };
        match &self.kind {
            Kind::WorkflowInitiated {
                name,
                description,
                user,
                group,
            } => {
                field("name", json_str(name));
                field("description", json_str(description));
                field("user", user.to_string());
                field("group", group.to_string());
            }
            Kind::TaskAdded { task_id } => field("task_id", uuid_value(*task_id)),
            Kind::WorkflowStarted | Kind::WorkflowCompleted | Kind::TaskStarted => {}
            Kind::WorkflowFailed { error_message } | Kind::TaskFailed { error_message } => {
                field("error_message", json_str(error_message));
            }
            Kind::TaskCreated {
                workflow_id,
                task_name,
                task_version,
                input_data,
                params,
            } => {
                field("workflow_id", uuid_value(*workflow_id));
                field("task_name", json_str(task_name));
                field("task_version", json_str(task_version));
                field("input_data", input_data.to_string());
                field("params", params.to_string());
            }
            Kind::JobIdAdded { job_id } => field("job_id", json_str(job_id)),
            Kind::StatusUpdated { status } => field("status", json_str(status)),
            Kind::ProgressUpdated { progress } => field("progress", json_str(progress)),
            Kind::ResultAdded { result } => field("result", result.to_string()),
            Kind::TaskCompleted { result } => field("result", json_str(result)),
        }
        s.push('}');
        s.into_bytes()
    }

    /// Reads a stored event of BIOMERO's WorkflowRun or Task.
    pub fn decode(e: &StoredEvent) -> Result<TrackedEvent, DecodeError> {
        let bad = |reason: String| DecodeError::State {
            id: e.id,
            topic: e.topic.clone(),
            reason,
        };
        let (aggregate, class) = e.topic.rsplit_once('.').ok_or_else(|| DecodeError::Topic {
            id: e.id,
            topic: e.topic.clone(),
        })?;
        if aggregate != WORKFLOW_TOPIC && aggregate != TASK_TOPIC {
            return Err(DecodeError::Topic {
                id: e.id,
                topic: e.topic.clone(),
            });
        }
        let state: Map<String, Value> = serde_json::from_slice(&e.state)
            .map_err(|err| bad(format!("the state is not a JSON object: {err}")))?;
        let typed = |key: &str, type_name: &str| -> Result<String, DecodeError> {
            let v = state.get(key).ok_or_else(|| bad(format!("no `{key}`")))?;
            match (v.get("_type_").and_then(Value::as_str), v.get("_data_")) {
                (Some(t), Some(Value::String(d))) if t == type_name => Ok(d.clone()),
                _ => Err(bad(format!("`{key}` is not a {type_name}"))),
            }
        };
        let text = |key: &str| -> Result<String, DecodeError> {
            match state.get(key) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Ok(other.to_string()),
                None => Err(bad(format!("no `{key}`"))),
            }
        };
        let int = |key: &str| -> Result<i64, DecodeError> {
            state
                .get(key)
                .and_then(Value::as_i64)
                .ok_or_else(|| bad(format!("`{key}` is not an integer")))
        };
        let uuid = |key: &str| -> Result<Uuid, DecodeError> {
            let hex = typed(key, "uuid_hex")?;
            Uuid::parse_str(&hex).map_err(|err| bad(format!("`{key}`: {err}")))
        };
        let value = |key: &str| state.get(key).cloned().unwrap_or(Value::Null);
        let ts = typed("timestamp", "datetime_iso")?;
        let at = DateTime::parse_from_rfc3339(&ts)
            .or_else(|_| DateTime::parse_from_str(&ts, "%Y-%m-%dT%H:%M:%S%.f%:z"))
            .map_err(|err| bad(format!("timestamp `{ts}`: {err}")))?
            .with_timezone(&Utc);
        let workflow = aggregate == WORKFLOW_TOPIC;
        let kind = match (workflow, class) {
            (true, "WorkflowInitiated") => Kind::WorkflowInitiated {
                name: text("name")?,
                description: text("description")?,
                user: int("user")?,
                group: int("group")?,
            },
            (true, "TaskAdded") => Kind::TaskAdded {
                task_id: uuid("task_id")?,
            },
            (true, "WorkflowStarted") => Kind::WorkflowStarted,
            (true, "WorkflowCompleted") => Kind::WorkflowCompleted,
            (true, "WorkflowFailed") => Kind::WorkflowFailed {
                error_message: text("error_message")?,
            },
            (false, "TaskCreated") => Kind::TaskCreated {
                workflow_id: uuid("workflow_id")?,
                task_name: text("task_name")?,
                task_version: text("task_version")?,
                input_data: value("input_data"),
                params: value("params"),
            },
            (false, "JobIdAdded") => Kind::JobIdAdded {
                job_id: text("job_id")?,
            },
            (false, "StatusUpdated") => Kind::StatusUpdated {
                status: text("status")?,
            },
            (false, "ProgressUpdated") => Kind::ProgressUpdated {
                progress: text("progress")?,
            },
            (false, "ResultAdded") => Kind::ResultAdded {
                result: value("result"),
            },
            (false, "TaskStarted") => Kind::TaskStarted,
            (false, "TaskCompleted") => Kind::TaskCompleted {
                result: text("result")?,
            },
            (false, "TaskFailed") => Kind::TaskFailed {
                error_message: text("error_message")?,
            },
            _ => {
                return Err(DecodeError::Topic {
                    id: e.id,
                    topic: e.topic.clone(),
                });
            }
        };
        Ok(TrackedEvent {
            originator: e.originator_id,
            version: e.originator_version,
            at,
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(micros: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 18, 32, 57)
            .single()
            .expect("valid time")
            + chrono::Duration::microseconds(i64::from(micros))
    }

    #[test]
    fn states_are_byte_for_byte_what_eventsourcing_wrote() {
        // rows of workflowtracker_events written by biomero 2.8.3's own WorkflowTracker
        let wf = Uuid::parse_str("845fdb69-2b41-4ac6-bf22-088b459a4aa0").expect("uuid");
        let task = Uuid::parse_str("bb936acd-6c43-437d-9db7-152c6e8b4bee").expect("uuid");
        let initiated = TrackedEvent {
            originator: wf,
            version: 0,
            at: at(292_128),
            kind: Kind::WorkflowInitiated {
                name: "Slurm Workflow".into(),
                description: "desc\n2.8.2".into(),
                user: 52,
                group: 3,
            },
        };
        assert_eq!(
            String::from_utf8(initiated.state()).expect("utf-8"),
            r#"{"timestamp":{"_type_":"datetime_iso","_data_":"2026-12-01T18:32:57.292128+00:00"},"originator_topic":"biomero.eventsourcing:WorkflowRun","name":"Slurm Workflow","description":"desc\n2.8.2","user":52,"group":3}"#
        );
        assert_eq!(
            initiated.topic(),
            "biomero.eventsourcing:WorkflowRun.WorkflowInitiated"
        );
        let created = TrackedEvent {
            originator: task,
            version: 0,
            at: at(356_240),
            kind: Kind::TaskCreated {
                workflow_id: wf,
                task_name: "_SLURM_Image_Transfer.py".into(),
                task_version: "2.8.2".into(),
                input_data: serde_json::json!([1, 2]),
                params: serde_json::json!({"IDs": [1, 2]}),
            },
        };
        assert_eq!(
            String::from_utf8(created.state()).expect("utf-8"),
            r#"{"timestamp":{"_type_":"datetime_iso","_data_":"2026-12-01T18:32:57.356240+00:00"},"originator_topic":"biomero.eventsourcing:Task","workflow_id":{"_type_":"uuid_hex","_data_":"845fdb692b414ac6bf22088b459a4aa0"},"task_name":"_SLURM_Image_Transfer.py","task_version":"2.8.2","input_data":[1,2],"params":{"IDs":[1,2]}}"#
        );
        let added = TrackedEvent {
            originator: wf,
            version: 1,
            at: at(408_143),
            kind: Kind::TaskAdded { task_id: task },
        };
        assert_eq!(
            String::from_utf8(added.state()).expect("utf-8"),
            r#"{"timestamp":{"_type_":"datetime_iso","_data_":"2026-12-01T18:32:57.408143+00:00"},"task_id":{"_type_":"uuid_hex","_data_":"bb936acd6c43437d9db7152c6e8b4bee"}}"#
        );
    }

    #[test]
    fn whole_seconds_have_no_fraction_as_in_python() {
        assert_eq!(python_isoformat(at(0)), "2026-12-01T18:32:57+00:00");
        assert_eq!(python_isoformat(at(7)), "2026-12-01T18:32:57.000007+00:00");
    }

    #[test]
    fn every_kind_reads_back_as_written() {
        let wf = Uuid::new_v4();
        let kinds = [
            Kind::WorkflowInitiated {
                name: "n\"é".into(),
                description: "d\u{1}".into(),
                user: -1,
                group: 7,
            },
            Kind::TaskAdded { task_id: wf },
            Kind::WorkflowStarted,
            Kind::WorkflowCompleted,
            Kind::WorkflowFailed {
                error_message: "x".into(),
            },
            Kind::TaskCreated {
                workflow_id: wf,
                task_name: "cellpose".into(),
                task_version: "v1".into(),
                input_data: serde_json::json!({"IDs": [1]}),
                params: serde_json::json!({"a": "b"}),
            },
            Kind::JobIdAdded {
                job_id: "12".into(),
            },
            Kind::StatusUpdated {
                status: "RUNNING".into(),
            },
            Kind::ProgressUpdated {
                progress: "43%".into(),
            },
            Kind::TaskStarted,
            Kind::TaskCompleted {
                result: "ok".into(),
            },
            Kind::TaskFailed {
                error_message: "no".into(),
            },
        ];
        for (n, kind) in kinds.into_iter().enumerate() {
            let e = TrackedEvent {
                originator: wf,
                version: i64::try_from(n).expect("small"),
                at: at(12),
                kind,
            };
            let stored = StoredEvent {
                id: 1,
                originator_id: e.originator,
                originator_version: e.version,
                topic: e.topic(),
                state: e.state(),
            };
            assert_eq!(TrackedEvent::decode(&stored), Ok(e));
        }
    }

    #[test]
    fn foreign_topics_are_named() {
        let stored = StoredEvent {
            id: 9,
            originator_id: Uuid::nil(),
            originator_version: 0,
            topic: "other.module:Thing.Happened".into(),
            state: b"{}".to_vec(),
        };
        let e = TrackedEvent::decode(&stored).expect_err("foreign");
        assert!(e.to_string().contains("other.module:Thing.Happened"), "{e}");
    }
}
