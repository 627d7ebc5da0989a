//! One module per pipeline step.

pub mod plan;
pub mod stage;

use serde_json::json;
use stage_source::SourceError;

use super::StepOutcome;

/// The outcome of a step that failed with a source error: retry what may pass,
/// wait for the configuration when a source is missing (a reload resumes the
/// submission), fail the rest.
pub(crate) fn source_outcome(e: &SourceError) -> StepOutcome {
    if let SourceError::NotConfigured(what) = e {
        StepOutcome::Waiting {
            capability: what.clone(),
        }
    } else if e.is_transient() {
        StepOutcome::Transient {
            error: e.to_string(),
        }
    } else {
        StepOutcome::Failed {
            reason: e.to_string(),
            detail: json!({}),
        }
    }
}
