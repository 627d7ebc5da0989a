//! The queue's data: submissions, their states, events and claims.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a submission is in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Accepted into the queue.
    Received,
    /// Workflow and inputs resolved into a staging plan.
    Planned,
    /// Inputs written to the local staging area.
    Staged,
    /// Inputs on the cluster.
    Uploaded,
    /// The Slurm job submitted.
    Submitted,
    /// The job ended successfully.
    Finished,
    /// Outputs downloaded and kept.
    Collected,
    /// Results handed to BIOMERO.importer and imported.
    Imported,
    /// Stopped with a reason.
    Failed,
    /// Cancelled on request.
    Cancelled,
}

/// Every state, in pipeline order.
pub const ALL_STATES: [State; 10] = [
    State::Received,
    State::Planned,
    State::Staged,
    State::Uploaded,
    State::Submitted,
    State::Finished,
    State::Collected,
    State::Imported,
    State::Failed,
    State::Cancelled,
];

impl State {
    /// The state's name in the database and API.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Received => "received",
            State::Planned => "planned",
            State::Staged => "staged",
            State::Uploaded => "uploaded",
            State::Submitted => "submitted",
            State::Finished => "finished",
            State::Collected => "collected",
            State::Imported => "imported",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
        }
    }

    /// Whether nothing follows this state.
    pub fn is_terminal(self) -> bool {
        matches!(self, State::Imported | State::Failed | State::Cancelled)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL_STATES
            .iter()
            .copied()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown state `{s}`"))
    }
}

/// A submission as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    /// Identifier (and idempotency key).
    pub id: String,
    /// Workflow key.
    pub workflow: String,
    /// The submission document as received.
    pub request: Value,
    /// Current state.
    pub state: State,
    /// No step follows (terminal, or prep-only and uploaded).
    pub done: bool,
    /// The capability the next step waits for, when it is not available.
    pub waiting_for: Option<String>,
    /// The last error (why it failed, or why the last attempt was retried).
    pub error: Option<String>,
    /// Attempts of the current step so far.
    pub attempts: i32,
    /// Not claimed before this time (backoff).
    pub next_attempt_at: DateTime<Utc>,
    /// Cancellation was requested.
    pub cancel_requested: bool,
    /// Results of the steps so far, by step name.
    pub data: Value,
    /// When it was received.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A new submission to enqueue (already validated).
#[derive(Debug, Clone, PartialEq)]
pub struct NewSubmission {
    /// Identifier (idempotency key).
    pub id: String,
    /// Workflow key.
    pub workflow: String,
    /// The submission document.
    pub request: Value,
    /// What was asked for and will not be done, each saying why: recorded in the submission's
    /// first (`intake`) event, in the same transaction as the submission, so a crash can
    /// never queue the submission without them.
    pub notices: Vec<String>,
}

/// How a step ended, in the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The submission entered the queue.
    Accepted,
    /// A step completed.
    Succeeded,
    /// A step failed transiently and will be retried.
    Retrying,
    /// A step cannot run yet (missing capability).
    Waiting,
    /// The submission failed.
    Failed,
    /// Cancellation was requested.
    CancelRequested,
    /// The submission was cancelled.
    Cancelled,
    /// A lease expired and the submission went back to the queue.
    LeaseExpired,
    /// Progress within a step (e.g. job progress).
    Progress,
    /// Something happened that changes nothing (a notification sent or not, and why).
    Noted,
}

impl Outcome {
    /// The outcome's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Succeeded => "succeeded",
            Outcome::Retrying => "retrying",
            Outcome::Waiting => "waiting",
            Outcome::Failed => "failed",
            Outcome::CancelRequested => "cancel_requested",
            Outcome::Cancelled => "cancelled",
            Outcome::LeaseExpired => "lease_expired",
            Outcome::Progress => "progress",
            Outcome::Noted => "noted",
        }
    }
}

impl FromStr for Outcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "accepted" => Outcome::Accepted,
            "succeeded" => Outcome::Succeeded,
            "retrying" => Outcome::Retrying,
            "waiting" => Outcome::Waiting,
            "failed" => Outcome::Failed,
            "cancel_requested" => Outcome::CancelRequested,
            "cancelled" => Outcome::Cancelled,
            "lease_expired" => Outcome::LeaseExpired,
            "progress" => Outcome::Progress,
            "noted" => Outcome::Noted,
            other => return Err(format!("unknown outcome `{other}`")),
        })
    }
}

/// One entry of a submission's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the submission's history (1, 2, …).
    pub seq: i32,
    /// The step (`intake`, `plan`, `stage`, …).
    pub step: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The submission's state after it.
    pub state: State,
    /// Step output or error details.
    pub detail: Value,
    /// When.
    pub at: DateTime<Utc>,
}

/// A submission held by a worker under a lease.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// The submission as it was when claimed.
    pub submission: Submission,
    /// The lease token (fencing: every write checks it).
    pub token: String,
    /// The worker holding it.
    pub owner: String,
}

/// A change of a claimed submission, recorded atomically with its event.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The step that produced it.
    pub step: String,
    /// How the step ended.
    pub outcome: Outcome,
    /// The new state (unchanged when `None`).
    pub state: Option<State>,
    /// Whether the pipeline is done with the submission.
    pub done: bool,
    /// Event detail (and, for `Succeeded`, the step's result stored under `data[step]`).
    pub detail: Value,
    /// The error to show, if any.
    pub error: Option<String>,
    /// The capability waited for, if waiting.
    pub waiting_for: Option<String>,
    /// When to try again (retry backoff), if retrying.
    pub retry_at: Option<DateTime<Utc>>,
}

impl Transition {
    /// A step succeeded and moved the submission to `state`, with `result` kept under `data[step]`.
    pub fn succeeded(step: &str, state: State, result: Value) -> Self {
        Transition {
            step: step.to_owned(),
            outcome: Outcome::Succeeded,
            state: Some(state),
            done: state.is_terminal(),
            detail: result,
            error: None,
            waiting_for: None,
            retry_at: None,
        }
    }

    /// The submission failed permanently.
    pub fn failed(step: &str, reason: &str, detail: Value) -> Self {
        Transition {
            step: step.to_owned(),
            outcome: Outcome::Failed,
            state: Some(State::Failed),
            done: true,
            detail,
            error: Some(reason.to_owned()),
            waiting_for: None,
            retry_at: None,
        }
    }

    /// A transient failure: try again at `at`.
    pub fn retrying(step: &str, reason: &str, at: DateTime<Utc>) -> Self {
        Transition {
            step: step.to_owned(),
            outcome: Outcome::Retrying,
            state: None,
            done: false,
            detail: serde_json::json!({ "error": reason, "retry_at": at }),
            error: Some(reason.to_owned()),
            waiting_for: None,
            retry_at: Some(at),
        }
    }

    /// The step is under way (a job still running): recorded, no attempt counted, resumed at `at`.
    pub fn progress(step: &str, detail: Value, at: DateTime<Utc>) -> Self {
        Transition {
            step: step.to_owned(),
            outcome: Outcome::Progress,
            state: None,
            done: false,
            detail,
            error: None,
            waiting_for: None,
            retry_at: Some(at),
        }
    }

    /// The step cannot run in this build or configuration yet.
    pub fn waiting(step: &str, capability: &str) -> Self {
        Transition {
            step: step.to_owned(),
            outcome: Outcome::Waiting,
            state: None,
            done: false,
            detail: serde_json::json!({ "waiting_for": capability }),
            error: None,
            waiting_for: Some(capability.to_owned()),
            retry_at: None,
        }
    }

    /// The submission was cancelled.
    pub fn cancelled(step: &str) -> Self {
        Transition {
            step: step.to_owned(),
            outcome: Outcome::Cancelled,
            state: Some(State::Cancelled),
            done: true,
            detail: serde_json::json!({}),
            error: None,
            waiting_for: None,
            retry_at: None,
        }
    }
}

/// Filters for listing submissions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only this state.
    pub state: Option<State>,
    /// At most this many, newest first.
    pub limit: i64,
    /// Only the submissions of this run (ids `<run>-<n>`).
    pub run: Option<String>,
    /// Only those listed after this submission (newest first): the id of the last one of
    /// the previous page, a cursor that holds while submissions arrive.
    pub before: Option<String>,
}

/// What renewing a lease found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// The lease is ours for another period.
    Held,
    /// Still ours, and someone asked for the submission to be cancelled.
    CancelRequested,
    /// It expired and another holder may have it: stop and record nothing.
    Lost,
}
