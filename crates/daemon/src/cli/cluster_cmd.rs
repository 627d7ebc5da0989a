//! `biomero-stage init | check-setup`: prepare the cluster and show what it has
//! (BIOMERO's "Slurm Init" and "Slurm Check Setup").

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use stage_cluster::Remote;
use stage_cluster::setup::{self, PullOptions, SetupReport};
use stage_config::live::{Snapshot, load_snapshot};
use stage_config::registry::DescriptorRefresh;

use super::GlobalArgs;

/// `init` options.
#[derive(Debug, Args)]
pub(super) struct InitArgs {
    /// Also start container pulls for workflows whose image version is missing
    #[arg(long)]
    pull: bool,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

/// `check-setup` options.
#[derive(Debug, Args)]
pub(super) struct CheckSetupArgs {
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

async fn connect(global: &GlobalArgs) -> anyhow::Result<(Snapshot, Remote)> {
    let snapshot = load_snapshot(&global.sources(), DescriptorRefresh::CacheFirst, 1)
        .await
        .context("the configuration cannot be used (run `biomero-stage config check`)")?;
    let remote = crate::cluster::remote(&snapshot);
    Ok((snapshot, remote))
}

/// Creates the cluster folders, writes generated job scripts, optionally starts pulls.
pub(super) async fn init(a: &InitArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let (snapshot, remote) = connect(global).await?;
    let layout = stage_cluster::Layout::from_slurm(&snapshot.slurm.slurm)?;
    let workflows = crate::cluster::workflows(&snapshot)?;
    let slurm = &snapshot.slurm.slurm;
    let pull = a.pull.then(|| PullOptions {
        via_sbatch: slurm.image_pull_via_sbatch.value,
        sbatch_args: slurm
            .image_pull_params
            .iter()
            .map(stage_config::sbatch::SbatchParam::to_arg)
            .collect(),
    });
    let report = setup::init(&remote, &layout, &workflows, pull.as_ref())
        .await
        .with_context(|| format!("init on `{}`", remote.host()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("Cluster `{}` initialised.", remote.host());
        println!("Folders ({}):", report.folders.len());
        for f in &report.folders {
            println!("  {f}");
        }
        println!("Job scripts written ({}):", report.scripts.len());
        for s in &report.scripts {
            println!("  {s}");
        }
        if a.pull {
            println!("Container pulls started ({}):", report.pulls.len());
            for (k, how) in &report.pulls {
                println!("  {k}: {how}");
            }
            println!(
                "Follow them with `biomero-stage check-setup` (log: {}).",
                setup::pull_log(&layout)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "NO" }
}

fn print_report(r: &SetupReport) {
    println!("Cluster `{}`", r.host);
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(["folder", "path", "exists", "writable"]);
    for f in &r.folders {
        t.add_row([f.role.as_str(), &f.path, yes(f.exists), yes(f.writable)]);
    }
    println!("{t}");
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(["workflow", "version", "image", "available", "job script"]);
    for w in &r.workflows {
        t.add_row([
            w.key.clone(),
            w.version.clone(),
            format!(
                "{} ({})",
                w.sif,
                if w.image_ready { "present" } else { "MISSING" }
            ),
            if w.available.is_empty() {
                "-".to_owned()
            } else {
                w.available.join(", ")
            },
            format!(
                "{} ({})",
                w.job_script,
                if w.script_ready { "present" } else { "MISSING" }
            ),
        ]);
    }
    println!("{t}");
    if r.pending.is_empty() {
        println!("All workflows are ready.");
    } else {
        println!(
            "Pending ({}): {} — run `biomero-stage init` (scripts) and `biomero-stage init --pull` (images).",
            r.pending.len(),
            r.pending.join(", ")
        );
    }
    if !r.converters.is_empty() {
        println!("Converters (biomero-stage converts on this host; listed for BIOMERO):");
        for c in &r.converters {
            println!(
                "  {} {} ({})",
                c.name,
                c.version,
                if c.present { "present" } else { "absent" }
            );
        }
    }
    if !r.pull_log.is_empty() {
        println!("Container pull log (last lines):");
        for l in &r.pull_log {
            println!("  {l}");
        }
    }
}

/// Shows folders, workflow images and scripts, converters and the pull log; exit 1 when something is pending.
pub(super) async fn check_setup(
    a: &CheckSetupArgs,
    global: &GlobalArgs,
) -> anyhow::Result<ExitCode> {
    let (snapshot, remote) = connect(global).await?;
    let layout = stage_cluster::Layout::from_slurm(&snapshot.slurm.slurm)?;
    let workflows = crate::cluster::workflows(&snapshot)?;
    let report = setup::check(
        &remote,
        &layout,
        &workflows,
        &crate::cluster::converters(&snapshot),
    )
    .await
    .with_context(|| format!("check-setup on `{}`", remote.host()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    let folders_ok = report.folders.iter().all(|f| f.exists && f.writable);
    Ok(if report.pending.is_empty() && folders_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
