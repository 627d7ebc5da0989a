//! BIOMERO's own run requests: what OMERO.biomero's Run button starts.
//!
//! OMERO.biomero runs the OMERO script named exactly `SLURM_Run_Workflow.py`
//! (or `SLURM_Run_Workflow_Batched.py`) with BIOMERO's script inputs. The
//! drop-in scripts in `omero-scripts/` forward those inputs, the user's OMERO
//! session key and active group to `POST /api/v1/biomero/runs`; the CLI's
//! `biomero-stage biomero run` does the same from a file. Each request is read
//! key by key ([`keys`], [`translate`]), the session checked against OMERO
//! and everything validated before anything is queued ([`accept`]). BIOMERO
//! 2.9's detached runs, queued by its own scripts in its event store, are
//! claimed and queued the same way ([`detached`]).

pub mod accept;
pub mod detached;
pub mod keys;
pub mod mirror;
pub mod tracking;
pub mod translate;

/// The submissions of run `run`: ids `<run>-<n>`, and not those of a longer run id that
/// merely starts with `<run>-`.
pub async fn run_submissions(
    store: &stage_store::Store,
    run: &str,
) -> Result<Vec<stage_store::Submission>, stage_store::StoreError> {
    let list = store
        .list(&stage_store::ListFilter {
            state: None,
            // every submission a run may have had, whatever the setting is now
            limit: i64::from(stage_config::settings::RUN_SUBMISSIONS_CEILING),
            run: Some(run.to_owned()),
            before: None,
        })
        .await?;
    Ok(list
        .into_iter()
        .filter(|s| {
            s.id.strip_prefix(run)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect())
}
