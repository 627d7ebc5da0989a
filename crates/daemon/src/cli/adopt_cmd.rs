//! `biomero-stage adopt nl-biomero DIR`: the settings and systemd drop-in that match an
//! NL-BIOMERO deployment ([`crate::adopt`]), written to `--out` (or printed), with what
//! could not be decided.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use crate::adopt;

/// `adopt` subcommands.
#[derive(Debug, Subcommand)]
pub(super) enum AdoptCommand {
    /// Read an NL-BIOMERO checkout (docker-compose.yml, .env, slurm-config.ini, biomero-config.json) into biomero-stage.toml and a systemd drop-in
    NlBiomero(NlBiomeroArgs),
}

/// `adopt nl-biomero` options.
#[derive(Debug, Args)]
pub(super) struct NlBiomeroArgs {
    /// The NL-BIOMERO checkout (holding docker-compose.yml)
    dir: PathBuf,
    /// Write biomero-stage.toml and biomero-stage.service.d/nl-biomero.conf here (default: print them)
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

/// Runs an `adopt` subcommand.
pub(super) fn run(cmd: &AdoptCommand) -> anyhow::Result<ExitCode> {
    let AdoptCommand::NlBiomero(a) = cmd;
    let dir = std::path::absolute(&a.dir)?;
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    let adoption = match adopt::adopt(&dir, &home) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("adopt nl-biomero: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let settings = adopt::settings_toml(&adoption);
    let dropin = adopt::dropin(&adoption);
    let mut written = Vec::new();
    if let Some(out) = &a.out {
        let unit_dir = out.join("biomero-stage.service.d");
        std::fs::create_dir_all(&unit_dir)?;
        let toml_path = out.join("biomero-stage.toml");
        let dropin_path = unit_dir.join("nl-biomero.conf");
        stage_common::atomic::write(&toml_path, settings.as_bytes())?;
        stage_common::atomic::write(&dropin_path, dropin.as_bytes())?;
        written = vec![toml_path, dropin_path];
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "settings": adoption.settings,
                "service": adoption.service.iter().map(|(l, why)| json!({"line": l, "why": why})).collect::<Vec<_>>(),
                "undecided": adoption.undecided,
                "written": written,
            }))?
        );
    } else {
        if written.is_empty() {
            print!("{settings}\n{dropin}");
        } else {
            for w in &written {
                println!("wrote {}", w.display());
            }
        }
        let width = usize::from(stage_common::text::output_width());
        println!(
            "\nnot decided from the files ({}):",
            adoption.undecided.len()
        );
        for u in &adoption.undecided {
            print!(
                "{}",
                stage_common::text::wrap(&format!("- {u}"), width, "  ")
            );
        }
        println!(
            "then: biomero-stage --config {} config check --strict",
            a.out.as_ref().map_or_else(
                || "biomero-stage.toml".to_owned(),
                |o| o.join("biomero-stage.toml").display().to_string()
            )
        );
    }
    Ok(ExitCode::SUCCESS)
}
