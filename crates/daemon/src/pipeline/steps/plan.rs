//! The `plan` step: check the submission against the configuration in force
//! and resolve its inputs into a staging plan.
//!
//! Submissions that came through the API or the CLI were checked at intake;
//! rows inserted by other programs are checked here first, with the same
//! rules, and fail with the same messages. The plan (what will be staged,
//! from where, under which names) is the step's record
//! ([`stage_source::Plan`]), so the stage step of a restarted daemon executes
//! exactly the plan that was recorded.

use serde_json::json;
use stage_store::Submission;

use super::super::record::StepRecord as _;
use super::super::{FailureKind, StepContext, StepOutcome};
use crate::intake;

/// Runs the step.
pub async fn run(ctx: &StepContext, s: &Submission) -> StepOutcome {
    let config = ctx.runtime.config.current();
    let mut doc = match super::document(s) {
        Ok(d) => d,
        Err(o) => return o,
    };
    doc.id = Some(s.id.clone());
    let accepted = match intake::validate(doc, &config) {
        Ok(a) => a,
        Err(e) => {
            return StepOutcome::failed(FailureKind::Invalid, e.to_string())
                .with_detail(json!({ "generation": config.generation }));
        }
    };
    let Some(wf) = config.registry.get(&accepted.doc.workflow) else {
        return StepOutcome::failed(
            FailureKind::Invalid,
            format!(
                "workflow `{}` is no longer configured",
                accepted.doc.workflow
            ),
        );
    };
    let settings = &config.settings.settings;
    let sources = match ctx.runtime.sources.sources(settings) {
        Ok(b) => b.sources,
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
            plan.done(false)
        }
        Err(e) => super::source_outcome(&e),
    }
}
