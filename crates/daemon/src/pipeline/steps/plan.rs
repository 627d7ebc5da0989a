//! The `plan` step: check the submission against the configuration in force
//! and resolve its inputs into a staging plan.
//!
//! Submissions that came through the API or the CLI were checked at intake;
//! rows inserted by other programs are checked here first, with the same
//! rules, and fail with the same messages. The plan (what will be staged,
//! from where, under which names) is the step's result, so the stage step of
//! a restarted daemon executes exactly the plan that was recorded.

use serde_json::json;
use stage_store::Submission;

use super::super::{StepContext, StepOutcome};
use crate::intake;

/// Runs the step.
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
    let accepted = match intake::validate(doc, &config) {
        Ok(a) => a,
        Err(e) => {
            return StepOutcome::Failed {
                reason: e.to_string(),
                detail: json!({ "generation": config.generation }),
            };
        }
    };
    let Some(wf) = config.registry.get(&accepted.doc.workflow) else {
        return StepOutcome::Failed {
            reason: format!(
                "workflow `{}` is no longer configured",
                accepted.doc.workflow
            ),
            detail: json!({}),
        };
    };
    let settings = &config.settings.settings;
    let sources = match ctx.runtime.sources.sources(settings) {
        Ok((s, _)) => s,
        Err(e) => return super::source_outcome(&e),
    };
    let request = crate::sources::request(&accepted.doc, wf.modes, settings);
    match stage_source::plan(&request, &sources).await {
        Ok(plan) => {
            tracing::info!(
                images = plan.images.len(),
                plates = plan.plates.len(),
                bytes = plan.bytes,
                "planned"
            );
            for n in &plan.notes {
                tracing::warn!(note = %n, "plan note");
            }
            match serde_json::to_value(&plan) {
                Ok(result) => StepOutcome::Done {
                    result,
                    last: false,
                },
                Err(e) => StepOutcome::Failed {
                    reason: format!("the plan cannot be recorded: {e}"),
                    detail: json!({}),
                },
            }
        }
        Err(e) => super::source_outcome(&e),
    }
}
