//! `biomero-stage config check|watch`.
//!
//! `check` loads the configuration once, prints it as a table (or JSON) and
//! exits non-zero when it has errors. `watch` keeps it loaded, follows file
//! changes and SIGHUP, and prints one report per reload attempt — the same
//! machinery the daemon uses, so a test of `watch` is a test of live reload.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;
use stage_config::live::load_snapshot;
use stage_config::registry::DescriptorRefresh;
use stage_config::{LiveConfig, Snapshot};

use super::GlobalArgs;
use crate::report;

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub(super) enum ConfigCommand {
    /// Print the resolved configuration (workflows, modes, sbatch parameters, warnings); exit 1 on errors
    Check(CheckArgs),
    /// Follow configuration changes: print the workflow modes after every reload (SIGHUP reloads too)
    Watch(WatchArgs),
}

/// `config check` options.
#[derive(Debug, Args)]
pub(super) struct CheckArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
    /// Exit 1 on warnings too (for CI and deployment checks)
    #[arg(long)]
    strict: bool,
}

/// `config watch` options.
#[derive(Debug, Args)]
pub(super) struct WatchArgs {
    /// Print one JSON object per line instead of text
    #[arg(long)]
    json: bool,
    /// How often to compare file contents when inotify is unavailable, in milliseconds
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    poll_ms: u64,
}

/// Runs a `config` subcommand.
pub(super) async fn run(cmd: ConfigCommand, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCommand::Check(o) => check(&o, global).await,
        ConfigCommand::Watch(w) => watch(&w, global).await,
    }
}

async fn check(o: &CheckArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match load_snapshot(&global.sources(), DescriptorRefresh::Revalidate, 1).await {
        Ok(s) => {
            if o.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report::snapshot_json(&s))?
                );
            } else {
                print!("{}", report::snapshot_text(&s));
            }
            let warnings = s.warnings().len();
            if o.strict && warnings > 0 {
                eprintln!(
                    "config check --strict: {warnings} warning(s), each above with what to do; exit 1"
                );
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if o.json {
                println!("{}", serde_json::to_string_pretty(&report::error_json(&e))?);
            } else {
                eprint!("{}", report::error_text(&e));
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

fn watch_line(s: &Snapshot, json: bool) -> String {
    if json {
        let modes: serde_json::Map<String, serde_json::Value> = s
            .registry
            .workflows
            .values()
            .map(|w| (w.key.clone(), json!(w.mode)))
            .collect();
        json!({"generation": s.generation, "modes": modes, "error": null}).to_string()
    } else {
        let modes: Vec<String> = s
            .registry
            .workflows
            .values()
            .map(|w| format!("{}={}", w.key, w.mode))
            .collect();
        format!("generation {}: {}", s.generation, modes.join(" "))
    }
}

async fn watch(w: &WatchArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let live = match LiveConfig::load(global.sources()).await {
        Ok(l) => l,
        Err(e) => {
            if w.json {
                println!("{}", report::error_json(&e));
            } else {
                eprint!("{}", report::error_text(&e));
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut changes = live.subscribe();
    let _watcher = live.spawn_watcher(Duration::from_millis(w.poll_ms.max(50)))?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    println!("{}", watch_line(&live.current(), w.json));
    let mut last_failures = 0;
    loop {
        tokio::select! {
            r = changes.changed() => {
                if r.is_err() { break; }
                let v = *changes.borrow_and_update();
                if v.failures > last_failures {
                    last_failures = v.failures;
                    let msg = live.last_error().map(|e| e.message).unwrap_or_default();
                    if w.json {
                        println!("{}", json!({"generation": v.generation, "error": msg}));
                    } else {
                        println!("reload failed, generation {} stays in force: {msg}", v.generation);
                    }
                } else {
                    println!("{}", watch_line(&live.current(), w.json));
                }
            }
            _ = hup.recv() => {
                let _ = live.reload().await;
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    Ok(ExitCode::SUCCESS)
}
