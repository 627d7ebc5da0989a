//! One module per pipeline step, each with the record it keeps
//! ([`super::record`]), and the mapping of the crates' errors to step outcomes.

pub mod attach;
pub mod collect;
pub mod follow;
pub mod import;
pub mod plan;
pub mod stage;
pub mod submit;
pub mod upload;

use stage_cluster::ClusterError;
use stage_source::SourceError;
use stage_store::Submission;

use crate::intake::SubmissionDoc;

use super::{FailureKind, StepOutcome};

/// Retried later when `transient`, else a permanent failure of `kind`, with `message`.
pub(crate) fn retry_or_fail(transient: bool, kind: FailureKind, message: String) -> StepOutcome {
    if transient {
        StepOutcome::Transient { error: message }
    } else {
        StepOutcome::failed(kind, message)
    }
}

/// The outcome of a results error: retry what may pass (the importer's
/// database unreachable), fail the rest.
pub(crate) fn results_outcome(e: &stage_results::ResultsError) -> StepOutcome {
    retry_or_fail(e.is_transient(), FailureKind::Results, e.to_string())
}

/// The outcome of a step that failed with a source error: retry what may pass,
/// wait for the configuration when a source is missing (a reload resumes the
/// submission), fail the rest.
pub(crate) fn source_outcome(e: &SourceError) -> StepOutcome {
    if let SourceError::NotConfigured(what) = e {
        StepOutcome::Waiting {
            capability: what.clone(),
        }
    } else {
        retry_or_fail(e.is_transient(), FailureKind::Input, e.to_string())
    }
}

/// The outcome of a step that failed with a cluster error: retry what may
/// pass (a dropped connection, an unreachable host), fail the rest with the
/// cluster's own message.
pub(crate) fn cluster_outcome(e: &ClusterError) -> StepOutcome {
    match e {
        ClusterError::Cancelled => StepOutcome::Cancelled,
        ClusterError::EmptyOutput(_) => StepOutcome::failed(FailureKind::Results, e.to_string()),
        _ => retry_or_fail(e.is_transient(), FailureKind::Cluster, e.to_string()),
    }
}

/// The submission document as stored.
pub(crate) fn document(s: &Submission) -> Result<SubmissionDoc, StepOutcome> {
    serde_json::from_value::<SubmissionDoc>(s.request.clone()).map_err(|e| {
        StepOutcome::failed(
            FailureKind::Invalid,
            format!("the stored request is not a valid submission: {e}"),
        )
    })
}

/// The cluster of the configuration in force.
pub(crate) fn cluster(ctx: &super::StepContext) -> Result<crate::cluster::Cluster, StepOutcome> {
    let config = ctx.runtime.config.current();
    ctx.runtime
        .cluster
        .get(&config)
        .map_err(|e| cluster_outcome(&e))
}

/// Runs `fut` unless the submission is cancelled first.
pub(crate) async fn unless_cancelled<T>(
    ctx: &super::StepContext,
    fut: impl std::future::Future<Output = Result<T, ClusterError>>,
) -> Result<T, ClusterError> {
    tokio::select! {
        r = fut => r,
        () = ctx.cancel.cancelled() => Err(ClusterError::Cancelled),
    }
}

/// A job log's tail as one line (`a | b | c`), for a failure reason.
pub(crate) fn one_line(tail: &str) -> String {
    tail.trim().lines().collect::<Vec<_>>().join(" | ")
}
