//! `biomero-stage workflows`: the workflows users can run, with their parameters.

use std::process::ExitCode;

use clap::Args;
use stage_config::live::load_snapshot;
use stage_config::registry::DescriptorRefresh;

use super::GlobalArgs;
use crate::report;

/// `workflows` options.
#[derive(Debug, Args)]
pub(super) struct WorkflowsArgs {
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

/// Lists workflows with their descriptor parameters.
pub(super) async fn run(a: WorkflowsArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match load_snapshot(&global.sources(), DescriptorRefresh::Revalidate, 1).await {
        Ok(s) => {
            if a.json {
                let list: Vec<_> = s
                    .registry
                    .workflows
                    .values()
                    .map(report::workflow_json)
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print!("{}", report::workflows_text(&s));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprint!("{}", report::error_text(&e));
            Ok(ExitCode::FAILURE)
        }
    }
}
