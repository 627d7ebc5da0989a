//! `biomero-stage plan | stage`: what a submission's inputs become, without the queue.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context as _;
use clap::Args;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde_json::json;
use stage_config::live::load_snapshot;
use stage_config::registry::DescriptorRefresh;
use stage_ngff::convert::TiffOptions;
use stage_ngff::copy::Sharding;
use stage_ngff::write::array::Compression;
use stage_source::Plan;
use stage_source::plan::{PixelSource, PlateSource};
use stage_source::stage::{INPUTS_DIR, MANIFEST_FILE, StageContext};

use super::GlobalArgs;
use crate::intake;
use crate::progress::Bar;
use crate::sources::{Built, SourceCache};

/// `plan` options.
#[derive(Debug, Args)]
pub(super) struct PlanArgs {
    /// The submission (JSON), or - for standard input
    file: PathBuf,
    /// Print the plan as JSON
    #[arg(long)]
    json: bool,
}

/// `stage` options.
#[derive(Debug, Args)]
pub(super) struct StageArgs {
    /// The submission (JSON), or - for standard input
    file: PathBuf,
    /// Staging root: inputs go to DIR/data/in, the manifest to DIR/stage-manifest.json
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Print the manifest as JSON
    #[arg(long)]
    json: bool,
}

/// Validates the submission and plans it; `Err` carries the message to print.
async fn make_plan(
    file: &std::path::Path,
    global: &GlobalArgs,
) -> anyhow::Result<Result<(Plan, Built, String, Sharding), String>> {
    let bytes = super::read_file_or_stdin(file)?;
    let snapshot = load_snapshot(&global.sources(), DescriptorRefresh::CacheFirst, 1)
        .await
        .context("the configuration cannot be used (run `biomero-stage config check`)")?;
    let accepted = match intake::parse(&bytes, &intake::Limits::of(&snapshot))
        .and_then(|d| intake::validate(d, &snapshot))
    {
        Ok(a) => a,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let Some(wf) = snapshot.registry.get(&accepted.doc.workflow) else {
        return Ok(Err(format!("unknown workflow `{}`", accepted.doc.workflow)));
    };
    let settings = &snapshot.settings.settings;
    let built = match SourceCache::default().sources(settings) {
        Ok(b) => b,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let request = crate::sources::request(&accepted.doc, wf.modes, settings);
    Ok(match stage_source::plan(&request, &built.sources).await {
        Ok(p) => Ok((
            p,
            built,
            accepted.doc.user.group.clone(),
            if settings.zarr_shards {
                Sharding::Shards
            } else {
                Sharding::None
            },
        )),
        Err(e) => Err(e.to_string()),
    })
}

fn describe(s: &PixelSource) -> String {
    match s {
        PixelSource::Zarr { path } => format!("zarr: {}", path.display()),
        PixelSource::Tiff {
            path,
            series,
            files,
            ..
        } => {
            let mut d = format!("tiff-file: {}", path.display());
            if *series > 0 {
                d.push_str(&format!(" (series {series})"));
            }
            if files.len() > 1 {
                d.push_str(&format!(" (+{} more files)", files.len() - 1));
            }
            d
        }
        PixelSource::OmeroTiles { image, .. } => format!("pixel-service: OMERO Image {image}"),
        PixelSource::Export { image, .. } => format!("omero-export: OMERO Image {image}"),
    }
}

fn mib(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let m = bytes as f64 / f64::from(1 << 20);
    format!("{m:.1} MiB")
}

fn print_plan(plan: &Plan) {
    let mut t = Table::new();
    t.set_width(stage_common::text::output_width());
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(["output", "format", "from", "size"]);
    for i in &plan.images {
        t.add_row([
            i.output.clone(),
            i.format.to_string(),
            describe(&i.source),
            mib(i.bytes),
        ]);
    }
    for p in &plan.plates {
        let from = match &p.source {
            PlateSource::Zarr { path } => path.display().to_string(),
            PlateSource::Omero { .. } => format!(
                "OMERO Plate {} ({} wells, {} fields)",
                p.origin.plate_id.unwrap_or_default(),
                p.wells,
                p.fields
            ),
        };
        t.add_row([p.output.clone(), "zarr-plate".into(), from, mib(p.bytes)]);
    }
    println!("{t}");
    println!(
        "{} output(s), {} of pixels, OME-Zarr written as NGFF {}",
        plan.images.len() + plan.plates.len(),
        mib(plan.bytes),
        plan.ngff_version
    );
    for i in &plan.images {
        if !i.passed_over.is_empty() {
            println!(
                "{}: from {}; not from {}",
                i.output,
                i.source.kind(),
                i.passed_over.join("; ")
            );
        }
        if let Some(r) = &i.renamed {
            println!("{}: named so because {r}", i.output);
        }
    }
    for p in &plan.plates {
        if let PlateSource::Omero { wells, .. } = &p.source {
            for f in wells.iter().flat_map(|w| &w.fields) {
                if !f.passed_over.is_empty() {
                    println!(
                        "{} field Image {}: from {}; not from {}",
                        p.output,
                        f.image_id,
                        f.source.kind(),
                        f.passed_over.join("; ")
                    );
                }
            }
        }
    }
    for n in &plan.notes {
        println!("note: {n}");
    }
}

pub(super) async fn plan(a: &PlanArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match make_plan(&a.file, global).await? {
        Ok((plan, _, _, _)) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                print_plan(&plan);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(message) => {
            if a.json {
                println!("{}", json!({"ok": false, "error": message}));
            } else {
                eprintln!("{message}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

pub(super) async fn stage(a: &StageArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let (plan, built, group, sharding) = match make_plan(&a.file, global).await? {
        Ok(p) => p,
        Err(message) => {
            eprintln!("{message}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let bar = Arc::new(Bar::new("planes"));
    let ctx = StageContext {
        omero: built.omero,
        exporter: built.exporter,
        group,
        log: Arc::new(|l: String| eprintln!("exporter: {l}")),
        progress: bar.clone(),
        cancel: Arc::new(AtomicBool::new(false)),
        tiff: TiffOptions::default(),
        compression: Compression::default(),
        sharding,
        on_staged: None,
    };
    let result = stage_source::stage::execute(&plan, &a.out, &ctx).await;
    bar.finish();
    match result {
        Ok(manifest) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&manifest)?);
            } else {
                for e in &manifest.entries {
                    println!("{:<40} {} in {:.2} s", e.output, e.how, e.seconds);
                }
                println!(
                    "staged into {}; manifest {}",
                    a.out.join(INPUTS_DIR).display(),
                    a.out.join(MANIFEST_FILE).display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
