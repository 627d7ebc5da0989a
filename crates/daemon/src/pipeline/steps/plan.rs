//! The `plan` step: check the submission against the configuration in force
//! and resolve its inputs into a staging plan.
//!
//! Submissions that came through the API or the CLI were checked at intake;
//! rows inserted by other programs are checked here first, with the same
//! rules, and fail with the same messages.

use serde_json::json;
use stage_store::Submission;

use super::super::{StepContext, StepOutcome};
use crate::intake;

/// Runs the step.
#[allow(
    clippy::unused_async,
    reason = "steps are async; planning becomes I/O-bound once sources are resolved"
)]
pub async fn run(ctx: &StepContext, s: &Submission) -> StepOutcome {
    let config = ctx.runtime.config.current();
    let doc = match serde_json::from_value::<intake::SubmissionDoc>(s.request.clone()) {
        Ok(mut d) => {
            d.id = Some(s.id.clone());
            d
        }
        Err(e) => {
            return StepOutcome::Failed {
                reason: format!("the stored request is not a valid submission: {e}"),
                detail: json!({}),
            };
        }
    };
    if let Err(e) = intake::validate(doc, &config) {
        return StepOutcome::Failed {
            reason: e.to_string(),
            detail: json!({ "generation": config.generation }),
        };
    }
    StepOutcome::Waiting {
        capability: "planning inputs needs the sources (shared storage, OMERO), which are not part of this build of biomero-stage yet".into(),
    }
}
