//! `biomero-stage serve | submit | status | cancel`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde_json::json;
use stage_config::live::load_snapshot;
use stage_config::registry::DescriptorRefresh;
use stage_store::{ListFilter, Store};

use super::GlobalArgs;
use crate::intake;

/// `serve` options.
#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// Lease duration in seconds (a stalled worker loses its submissions after this)
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    lease_secs: u64,
    /// Poll interval in milliseconds when no notification arrives
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    poll_ms: u64,
    /// First retry delay in milliseconds (doubles per attempt, capped at 5 minutes)
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    retry_ms: u64,
    /// Grace period for running steps at shutdown, in seconds
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    grace_secs: u64,
}

/// `submit` options.
#[derive(Debug, Args)]
pub(super) struct SubmitArgs {
    /// The submission (JSON), or - for standard input
    file: PathBuf,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// `status` options.
#[derive(Debug, Args)]
pub(super) struct StatusArgs {
    /// A submission id: show its history
    id: Option<String>,
    /// Only submissions in this state: received, planned, staged, uploaded, submitted,
    /// finished, collected, imported, failed or cancelled
    #[arg(long)]
    state: Option<String>,
    /// At most this many submissions
    #[arg(long, default_value_t = 50)]
    limit: i64,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// `cancel` options.
#[derive(Debug, Args)]
pub(super) struct CancelArgs {
    /// The submission id
    id: String,
}

pub(super) async fn serve(a: &ServeArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let timings = crate::runtime::Timings {
        lease: std::time::Duration::from_secs(a.lease_secs.max(1)),
        poll: std::time::Duration::from_millis(a.poll_ms.max(10)),
        retry_base: std::time::Duration::from_millis(a.retry_ms.max(10)),
        shutdown_grace: std::time::Duration::from_secs(a.grace_secs),
        ..crate::runtime::Timings::default()
    };
    crate::serve::serve(global.sources(), timings).await?;
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn open_store(global: &GlobalArgs) -> anyhow::Result<Store> {
    let sources = global.sources();
    let settings =
        stage_config::StageSettings::load(sources.settings_file.as_deref(), &sources.env)?;
    let url = settings.settings.queue_url();
    Store::connect(&url)
        .await
        .with_context(|| format!("cannot open the queue at {}", stage_store::redact(&url)))
}

pub(super) async fn submit(a: &SubmitArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let bytes = super::read_file_or_stdin(&a.file)?;
    let snapshot = load_snapshot(&global.sources(), DescriptorRefresh::CacheFirst, 1)
        .await
        .context("the configuration cannot be used (run `biomero-stage config check`)")?;
    let checked = match intake::parse(&bytes, &intake::Limits::of(&snapshot))
        .and_then(|d| intake::validate(d, &snapshot))
    {
        Ok(mut a) => {
            // a version other than the configured one is looked up on the cluster, as the
            // daemon's intake does
            let (clusters, cache) = Default::default();
            let on = crate::versions::OnCluster {
                clusters: &clusters,
                cache: &cache,
            };
            crate::versions::confirm(on, &snapshot, &mut a.doc)
                .await
                .map(|()| a)
        }
        Err(e) => Err(e),
    };
    let accepted = match checked {
        Ok(a) => a,
        Err(e) => {
            if a.json {
                let fields = match &e {
                    intake::IntakeError::Invalid(f) => json!(f),
                    intake::IntakeError::Malformed(_) | intake::IntakeError::Conflict { .. } => {
                        json!([])
                    }
                };
                println!(
                    "{}",
                    json!({"ok": false, "error": e.to_string(), "fields": fields})
                );
            } else {
                eprintln!("{e}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let store = open_store(global).await?;
    let (s, created) = match intake::enqueue(&store, accepted).await {
        Ok(r) => r,
        Err(intake::EnqueueError::Refused(e)) => {
            if a.json {
                println!(
                    "{}",
                    json!({"ok": false, "error": e.to_string(), "fields": []})
                );
            } else {
                eprintln!("{e}");
            }
            return Ok(ExitCode::FAILURE);
        }
        Err(intake::EnqueueError::Store(e)) => return Err(e.into()),
    };
    if a.json {
        println!(
            "{}",
            json!({"ok": true, "created": created, "submission": s})
        );
    } else if created {
        println!("queued {} ({})", s.id, s.workflow);
    } else {
        println!(
            "{} was already submitted; it is {} (not queued twice)",
            s.id, s.state
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.set_width(stage_common::text::output_width());
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().copied());
    t
}

pub(super) async fn status(a: &StatusArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(global).await?;
    if let Some(id) = &a.id {
        let Some(s) = store.get(id).await? else {
            eprintln!("no submission with id `{id}`");
            return Ok(ExitCode::FAILURE);
        };
        let events = store.events(id).await?;
        if a.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({"submission": s, "events": events}))?
            );
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "{} — {} — {}{}",
            s.id,
            s.workflow,
            s.state,
            if s.done { " (done)" } else { "" }
        );
        if let Some(w) = &s.waiting_for {
            println!("waiting for: {w}");
        }
        if let Some(e) = &s.error {
            println!("error: {e}");
        }
        let mut t = table(&["#", "time (UTC)", "step", "outcome", "state", "detail"]);
        for e in events {
            t.add_row(vec![
                e.seq.to_string(),
                e.at.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
                e.step,
                e.outcome.as_str().to_owned(),
                e.state.to_string(),
                crate::report::detail_summary(&e.detail),
            ]);
        }
        println!("{t}");
        println!("(every detail in full: status {id} --json)");
        return Ok(ExitCode::SUCCESS);
    }
    let state = match &a.state {
        Some(s) => Some(s.parse().map_err(|e: String| anyhow::anyhow!(e))?),
        None => None,
    };
    let list = store
        .list(&ListFilter {
            state,
            limit: a.limit,
            run: None,
            before: None,
        })
        .await?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"submissions": list}))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&["id", "workflow", "state", "updated (UTC)", "note"]);
    for s in &list {
        t.add_row(vec![
            s.id.clone(),
            s.workflow.clone(),
            format!("{}{}", s.state, if s.done { "" } else { " …" }),
            s.updated_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            s.waiting_for
                .clone()
                .or_else(|| s.error.clone())
                .unwrap_or_default(),
        ]);
    }
    println!("{t}");
    println!("{} submission(s) in {}", list.len(), store.describe());
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn cancel(a: &CancelArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(global).await?;
    match store.request_cancel(&a.id).await {
        Ok(s) => {
            println!(
                "cancellation of {} requested (it is {}); the daemon stops it",
                s.id, s.state
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
