//! One module per pipeline step.

pub mod collect;
pub mod follow;
pub mod import;
pub mod plan;
pub mod stage;
pub mod submit;
pub mod upload;

use serde_json::{Value, json};
use stage_cluster::ClusterError;
use stage_source::SourceError;
use stage_store::Submission;

use crate::intake::SubmissionDoc;

use super::StepOutcome;

/// A permanent failure with `reason` and no details.
pub(crate) fn failed(reason: String) -> StepOutcome {
    StepOutcome::Failed {
        reason,
        detail: json!({}),
    }
}

/// Retried later when `transient`, else a permanent failure, with `message`.
pub(crate) fn retry_or_fail(transient: bool, message: String) -> StepOutcome {
    if transient {
        StepOutcome::Transient { error: message }
    } else {
        failed(message)
    }
}

/// The outcome of a results error: retry what may pass (the importer's
/// database unreachable), fail the rest.
pub(crate) fn results_outcome(e: &stage_results::ResultsError) -> StepOutcome {
    retry_or_fail(e.is_transient(), e.to_string())
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
        retry_or_fail(e.is_transient(), e.to_string())
    }
}

/// The outcome of a step that failed with a cluster error: retry what may
/// pass (a dropped connection, an unreachable host), fail the rest with the
/// cluster's own message.
pub(crate) fn cluster_outcome(e: &ClusterError) -> StepOutcome {
    if matches!(e, ClusterError::Cancelled) {
        StepOutcome::Cancelled
    } else {
        retry_or_fail(e.is_transient(), e.to_string())
    }
}

/// A value an earlier step recorded under `data[step][field]`.
pub(crate) fn recorded<'a>(
    s: &'a Submission,
    step: &str,
    field: &str,
) -> Result<&'a Value, StepOutcome> {
    s.data
        .get(step)
        .and_then(|d| d.get(field))
        .ok_or_else(|| StepOutcome::Failed {
            reason: format!(
                "the `{step}` step recorded no `{field}`; the submission's history is incomplete"
            ),
            detail: json!({}),
        })
}

/// The submission document as stored.
pub(crate) fn document(s: &Submission) -> Result<SubmissionDoc, StepOutcome> {
    serde_json::from_value::<SubmissionDoc>(s.request.clone()).map_err(|e| StepOutcome::Failed {
        reason: format!("the stored request is not a valid submission: {e}"),
        detail: json!({}),
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
