//! The pipeline: which step follows which state, and what a step returns.
//!
//! This is the only code that knows the order of the steps:
//!
//! ```text
//! received ─plan─► planned ─stage─► staged ─upload─► uploaded ─submit─► submitted
//!          ─follow─► finished ─collect─► collected ─import─► imported
//! ```
//!
//! Each step is a function of the submission and the recorded results of the
//! steps before it (`data`), and is idempotent: a daemon killed at any instant
//! runs it again after restart and gets the same result without duplicating
//! anything. A step that this build cannot run yet does not pretend: the
//! submission waits, and its state says which capability is missing.

pub mod progress_events;
pub mod record;
pub mod steps;

use serde_json::Value;
use stage_store::{State, Submission};
use tokio_util::sync::CancellationToken;

use crate::runtime::Runtime;
use record::StepRecord as _;

/// The steps, in order, with the state each one leads to.
pub const STEPS: [(Step, State, State); 7] = [
    (Step::Plan, State::Received, State::Planned),
    (Step::Stage, State::Planned, State::Staged),
    (Step::Upload, State::Staged, State::Uploaded),
    (Step::Submit, State::Uploaded, State::Submitted),
    (Step::Follow, State::Submitted, State::Finished),
    (Step::Collect, State::Finished, State::Collected),
    (Step::Import, State::Collected, State::Imported),
];

/// A pipeline step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Validate and resolve inputs into a staging plan.
    Plan,
    /// Write the inputs into the local staging area.
    Stage,
    /// Copy them to the cluster.
    Upload,
    /// Submit the Slurm job.
    Submit,
    /// Follow the job to its end.
    Follow,
    /// Download and keep the outputs.
    Collect,
    /// Hand the results to BIOMERO.importer.
    Import,
}

impl Step {
    /// The step's name (in events, metrics and `data`).
    pub fn name(self) -> &'static str {
        match self {
            Step::Plan => "plan",
            Step::Stage => "stage",
            Step::Upload => "upload",
            Step::Submit => "submit",
            Step::Follow => "follow",
            Step::Collect => "collect",
            Step::Import => "import",
        }
    }

    /// The step that runs from `state`, and the state it leads to.
    pub fn after(state: State) -> Option<(Step, State)> {
        STEPS
            .iter()
            .find(|(_, from, _)| *from == state)
            .map(|(s, _, to)| (*s, *to))
    }
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// Done: move on to the next state; `result` is kept under `data[step]`.
    Done {
        /// What the next steps need to know.
        result: Value,
        /// The pipeline ends here (prep-only runs stop at `uploaded`).
        last: bool,
    },
    /// A transient failure (connection refused, timeout): try again later.
    Transient {
        /// What went wrong.
        error: String,
    },
    /// A permanent failure: the submission fails with this reason.
    Failed {
        /// What kind of failure (for metrics and the event log).
        kind: FailureKind,
        /// A reason a person can act on.
        reason: String,
        /// Details for the event log.
        detail: Value,
    },
    /// The step cannot run in this build or configuration.
    Waiting {
        /// The missing capability.
        capability: String,
    },
    /// The step is under way and needs no worker meanwhile (a job still
    /// running): recorded as progress, no attempt counted, resumed after `after`.
    Later {
        /// What is going on (the job's state, its progress).
        detail: Value,
        /// When to look again.
        after: std::time::Duration,
    },
    /// The step stopped because the submission was cancelled.
    Cancelled,
}

impl StepOutcome {
    /// A permanent failure of `kind` with `reason` and no details.
    pub fn failed(kind: FailureKind, reason: impl Into<String>) -> Self {
        StepOutcome::Failed {
            kind,
            reason: reason.into(),
            detail: Value::Object(serde_json::Map::new()),
        }
    }

    /// The same outcome with `detail` for the event log (a failure's, or progress').
    #[must_use]
    pub fn with_detail(self, detail: Value) -> Self {
        match self {
            StepOutcome::Failed { kind, reason, .. } => StepOutcome::Failed {
                kind,
                reason,
                detail,
            },
            StepOutcome::Later { after, .. } => StepOutcome::Later { detail, after },
            other => other,
        }
    }

    /// The outcome's name in metrics (`done`, `retry`, `failed`, …).
    pub fn name(&self) -> &'static str {
        match self {
            StepOutcome::Done { .. } => "done",
            StepOutcome::Transient { .. } => "retry",
            StepOutcome::Failed { .. } => "failed",
            StepOutcome::Waiting { .. } => "waiting",
            StepOutcome::Later { .. } => "later",
            StepOutcome::Cancelled => "cancelled",
        }
    }
}

/// Why a submission failed, by the kind of error (the `reason` label of the failures metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The submission does not fit the configuration in force (refused as at intake).
    Invalid,
    /// An earlier step's record is missing or unreadable.
    Record,
    /// The inputs cannot be resolved or staged.
    Input,
    /// The cluster refused something (a transfer, sbatch, a path).
    Cluster,
    /// The job ended without completing.
    Job,
    /// The job's outputs cannot be kept (empty, unsafe, over the limits).
    Results,
    /// BIOMERO.importer failed, timed out, or has nowhere to import to.
    Import,
    /// A transient failure that kept failing until the attempts ran out.
    GaveUp,
}

impl FailureKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Invalid => "invalid",
            FailureKind::Record => "record",
            FailureKind::Input => "input",
            FailureKind::Cluster => "cluster",
            FailureKind::Job => "job",
            FailureKind::Results => "results",
            FailureKind::Import => "import",
            FailureKind::GaveUp => "gave_up",
        }
    }
}

/// What a running step may use.
#[derive(Clone)]
pub struct StepContext {
    /// The daemon's shared state (configuration, queue, metrics).
    pub runtime: Runtime,
    /// Cancelled when the submission is cancelled or the lease is lost.
    pub cancel: CancellationToken,
}

/// Runs `step` for `submission`.
pub async fn run(step: Step, ctx: &StepContext, submission: &Submission) -> StepOutcome {
    match step {
        Step::Plan => steps::plan::run(ctx, submission).await,
        Step::Stage => steps::stage::run(ctx, submission).await,
        Step::Upload => steps::upload::run(ctx, submission).await,
        Step::Submit => steps::submit::run(ctx, submission).await,
        Step::Follow => steps::follow::run(ctx, submission).await,
        Step::Collect => steps::collect::run(ctx, submission).await,
        Step::Import => steps::import::run(ctx, submission).await,
    }
}

/// What must happen on the cluster when a submission is cancelled outside a
/// running step (a job in the queue is stopped); the detail for the event.
pub async fn on_cancel(ctx: &StepContext, submission: &Submission) -> Value {
    if submission.state != State::Submitted {
        return Value::Null;
    }
    let Ok(job) = steps::submit::SubmitRecord::read(submission) else {
        return Value::Null;
    };
    match steps::follow::stop(ctx, &submission.id, job.job_id).await {
        Ok(()) => serde_json::json!({ "scancel": job.job_id }),
        Err(e) => {
            tracing::warn!(job_id = job.job_id, error = %e, "cannot stop the job");
            serde_json::json!({ "scancel": job.job_id, "error": e.to_string() })
        }
    }
}
