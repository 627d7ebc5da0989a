//! `biomero-stage descriptors pin`: every configured workflow's descriptor
//! fetched into a descriptor directory, with its source URL and ETag beside it
//! (`<file>.meta.json`), so an air-gapped site checks parameters offline
//! afterwards. Run again, each copy is revalidated with its ETag and rewritten
//! only when the repository changed it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;
use stage_config::descriptor::store::{DescriptorStore, FetchPolicy, Origin};
use stage_config::live::load_snapshot;
use stage_config::registry::DescriptorRefresh;

use super::GlobalArgs;

/// `descriptors` subcommands.
#[derive(Debug, Subcommand)]
pub(super) enum DescriptorsCommand {
    /// Fetch every configured workflow's descriptor into a descriptor directory (with its URL and ETag), for offline use
    Pin(PinArgs),
}

/// `descriptors pin` options.
#[derive(Debug, Args)]
pub(super) struct PinArgs {
    /// Where to pin them (default: the first of `descriptor_dirs`)
    #[arg(long, value_name = "DIR")]
    into: Option<PathBuf>,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

/// Runs a `descriptors` subcommand.
pub(super) async fn run(cmd: DescriptorsCommand, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match cmd {
        DescriptorsCommand::Pin(a) => pin(&a, global).await,
    }
}

async fn pin(a: &PinArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let s = match load_snapshot(&global.sources(), DescriptorRefresh::Revalidate, 1).await {
        Ok(s) => s,
        Err(e) => {
            eprint!("{}", crate::report::error_text(&e));
            return Ok(ExitCode::FAILURE);
        }
    };
    let settings = &s.settings.settings;
    let Some(dir) = a
        .into
        .clone()
        .or_else(|| settings.descriptor_dirs.first().cloned())
    else {
        eprintln!(
            "descriptors pin: no directory to pin into: set descriptor_dirs in biomero-stage.toml (and keep it there, so the daemon reads the pinned copies), or give --into DIR"
        );
        return Ok(ExitCode::FAILURE);
    };
    // the directory is the store's cache: its layout is the pinned layout, and its
    // `.meta.json` files keep the URL and ETag that revalidate it next time
    let store = DescriptorStore::new(
        Vec::new(),
        Some(dir.clone()),
        FetchPolicy::Online,
        Duration::from_secs(settings.descriptor_timeout_secs),
    );
    let mut rows = Vec::new();
    let mut failed = 0;
    for w in s.registry.workflows.values() {
        let Some(repo) = &w.repo else {
            failed += 1;
            rows.push(json!({"key": w.key, "pinned": "failed", "error": format!("no `{}_repo`: nothing to fetch", w.key)}));
            continue;
        };
        match store.find(repo).await {
            Ok(found) => {
                let (pinned, file, url) = match &found.origin {
                    Origin::Network { url } => ("fetched", None, Some(url.clone())),
                    Origin::Cache {
                        path,
                        url,
                        revalidated: true,
                    } => ("unchanged", Some(path.clone()), Some(url.clone())),
                    Origin::Cache { path, url, .. } => {
                        failed += 1;
                        (
                            "kept, not revalidated",
                            Some(path.clone()),
                            Some(url.clone()),
                        )
                    }
                    Origin::File { path } | Origin::Shipped { path } => {
                        ("a local file", Some(path.clone()), None)
                    }
                };
                // fetched just now: where it was written is where the offline store finds it
                let file = match file {
                    Some(f) => Some(f),
                    None => match store.offline().find(repo).await {
                        Ok(f) => match f.origin {
                            Origin::Cache { path, .. } => Some(path),
                            _ => None,
                        },
                        Err(_) => None,
                    },
                };
                rows.push(json!({
                    "key": w.key,
                    "pinned": pinned,
                    "file": file.map(|f| f.display().to_string()),
                    "url": url,
                    "notes": found.notes,
                }));
            }
            Err(e) => {
                failed += 1;
                rows.push(json!({"key": w.key, "pinned": "failed", "error": e.to_string()}));
            }
        }
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"dir": dir, "workflows": rows}))?
        );
    } else {
        println!("descriptors pinned in {}:", dir.display());
        for r in &rows {
            let key = r["key"].as_str().unwrap_or_default();
            let what = r["pinned"].as_str().unwrap_or_default();
            match (r["file"].as_str(), r["error"].as_str()) {
                (_, Some(e)) => println!("  {key}: FAILED: {e}"),
                (Some(f), None) => println!("  {key}: {what}: {f}"),
                (None, None) => println!("  {key}: {what}"),
            }
        }
    }
    if failed > 0 {
        eprintln!(
            "descriptors pin: {failed} workflow(s) without a pinned descriptor; their parameters stay unchecked until they have one"
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
