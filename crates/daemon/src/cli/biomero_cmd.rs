//! `biomero-stage biomero-run`: a BIOMERO run request from a file, as the OMERO scripts send it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde_json::json;
use stage_config::live::load_snapshot;
use stage_config::registry::DescriptorRefresh;
use stage_config::settings::Secret;

use super::GlobalArgs;
use crate::biomero::accept::{self, RunError, RunRequest};

/// `biomero-run` options.
#[derive(Debug, Args)]
pub(super) struct BiomeroRunArgs {
    /// The script inputs as JSON (`client.getInputs(unwrap=True)`), or - for stdin
    inputs: PathBuf,
    /// The OMERO script they were given to
    #[arg(long, default_value = "SLURM_Run_Workflow.py")]
    script: String,
    /// The run id (default: generated)
    #[arg(long)]
    run: Option<String>,
    /// The OMERO group id the run must be in
    #[arg(long)]
    group_id: Option<i64>,
    /// A file holding the user's OMERO session key (default: $OMERO_SESSION_KEY)
    #[arg(long)]
    session_key_file: Option<PathBuf>,
    /// Print the outcome as JSON
    #[arg(long)]
    json: bool,
}

fn session_key(a: &BiomeroRunArgs) -> anyhow::Result<Option<Secret>> {
    if let Some(f) = &a.session_key_file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the session key file {}", f.display()))?;
        return Ok(Some(Secret::new(text.trim())));
    }
    Ok(std::env::var("OMERO_SESSION_KEY").ok().map(Secret::new))
}

pub(super) async fn run(a: &BiomeroRunArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let bytes = super::read_file_or_stdin(&a.inputs)?;
    let inputs: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes)
        .context("the inputs are not a JSON object of script inputs")?;
    let snapshot = load_snapshot(&global.sources(), DescriptorRefresh::CacheFirst, 1)
        .await
        .context("the configuration cannot be used (run `biomero-stage config check`)")?;
    let store = super::queue_cmd::open_store(global).await?;
    let omero = crate::http::runs::omero_web(&snapshot.settings.settings);
    let req = RunRequest {
        version: 1,
        run: a.run.clone(),
        script: a.script.clone(),
        inputs,
        group_id: a.group_id,
        user: None,
        attended: false,
    };
    let (clusters, cache) = Default::default();
    let on = crate::versions::OnCluster {
        clusters: &clusters,
        cache: &cache,
    };
    match accept::accept(req, session_key(a)?, omero.as_ref(), on, &snapshot, &store).await {
        Ok(run) => {
            if a.json {
                println!("{}", json!({"ok": true, "run": run}));
            } else {
                println!("{}", run.message);
                for (id, wf, new) in &run.submissions {
                    println!(
                        "  {id}  {wf}{}",
                        if *new { "" } else { "  (already queued)" }
                    );
                }
                for n in &run.notices {
                    println!("  notice: {n}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let fields = match &e {
                RunError::Refused(f) | RunError::Unchecked(f) => json!(f),
                _ => json!([]),
            };
            if a.json {
                println!(
                    "{}",
                    json!({"ok": false, "error": e.to_string(), "fields": fields})
                );
            } else {
                eprintln!("{e}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}
