//! `biomero-stage sample | convert | inspect`: the data engine from the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use stage_ngff::NgffVersion;
use stage_ngff::convert::{self, TiffOptions, ZarrOptions};
use stage_ngff::tiff::write::TiffCompression;
use stage_ngff::write::array::Compression;
use stage_sample::{SampleSpec, write_samples};

use crate::progress::Bar;

/// NGFF version on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum Ngff {
    /// NGFF 0.4 on Zarr v2 (what OMERO reads)
    #[value(name = "0.4")]
    V04,
    /// NGFF 0.5 on Zarr v3
    #[value(name = "0.5")]
    V05,
}

impl From<Ngff> for NgffVersion {
    fn from(n: Ngff) -> Self {
        match n {
            Ngff::V04 => NgffVersion::V04,
            Ngff::V05 => NgffVersion::V05,
        }
    }
}

/// `sample` options.
#[derive(Debug, Args)]
pub(super) struct SampleArgs {
    /// Output folder (plate.ome.zarr, images/, MANIFEST.json)
    #[arg(long)]
    out: PathBuf,
    /// NGFF version of the stores
    #[arg(long, value_enum, default_value = "0.4")]
    ngff: Ngff,
    /// Plate rows
    #[arg(long, default_value_t = 2)]
    rows: u32,
    /// Plate columns
    #[arg(long, default_value_t = 3)]
    columns: u32,
    /// Fields per well
    #[arg(long, default_value_t = 2)]
    fields: u32,
    /// Channels per image
    #[arg(long, default_value_t = 2)]
    channels: u32,
    /// Z planes per image
    #[arg(long, default_value_t = 1)]
    z: u32,
    /// Image size in pixels (square)
    #[arg(long, default_value_t = 512)]
    size: u32,
    /// Number of single images
    #[arg(long, default_value_t = 3)]
    images: u32,
    /// Also write the single images as OME-TIFF (tiffs/)
    #[arg(long)]
    tiffs: bool,
    /// Pyramid levels
    #[arg(long, default_value_t = 1)]
    levels: u32,
    /// Print the manifest as JSON
    #[arg(long)]
    json: bool,
}

/// `convert` subcommands.
#[derive(Debug, Subcommand)]
pub(super) enum ConvertCommand {
    /// OME-Zarr images, plates (every field) or bioformats2raw stores → one TIFF per image + manifest.json
    ZarrToTiff(ZarrToTiffArgs),
    /// TIFF / OME-TIFF files (or folders of them) → one OME-Zarr per file
    TiffToZarr(TiffToZarrArgs),
}

/// `convert zarr-to-tiff` options.
#[derive(Debug, Args)]
pub(super) struct ZarrToTiffArgs {
    /// Input stores
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output folder
    #[arg(long)]
    out: PathBuf,
    /// Compress strips with deflate (in parallel); default uncompressed
    #[arg(long)]
    deflate: bool,
    /// Always write BigTIFF (otherwise only when a file would pass 4 GiB)
    #[arg(long)]
    bigtiff: bool,
    /// Print the manifest as JSON
    #[arg(long)]
    json: bool,
}

/// Zarr compression on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum Codec {
    /// Blosc with zstd inside and byte shuffle (ome-zarr-py's family)
    BloscZstd,
    /// Plain zstd
    Zstd,
    /// No compression
    None,
}

/// `convert tiff-to-zarr` options.
#[derive(Debug, Args)]
pub(super) struct TiffToZarrArgs {
    /// Input TIFF files or folders
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output folder
    #[arg(long)]
    out: PathBuf,
    /// NGFF version
    #[arg(long, value_enum, default_value = "0.4")]
    ngff: Ngff,
    /// Chunk size in y and x
    #[arg(long, default_value_t = 1024)]
    chunk: u64,
    /// Shard size in y and x (NGFF 0.5 only)
    #[arg(long)]
    shard: Option<u64>,
    /// Compression
    #[arg(long, value_enum, default_value = "blosc-zstd")]
    codec: Codec,
    /// Compression level
    #[arg(long, default_value_t = 1)]
    level: i32,
    /// Pyramid levels (1 = none)
    #[arg(long, default_value_t = 1)]
    levels: u32,
    /// Print a JSON report
    #[arg(long)]
    json: bool,
}

/// `inspect` options.
#[derive(Debug, Args)]
pub(super) struct InspectArgs {
    /// An OME-Zarr image, plate, label image or bioformats2raw store
    path: PathBuf,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

pub(super) fn sample(a: &SampleArgs) -> anyhow::Result<ExitCode> {
    let spec = SampleSpec {
        version: a.ngff.into(),
        rows: a.rows,
        columns: a.columns,
        fields: a.fields,
        channels: a.channels,
        z: a.z,
        size: a.size,
        images: a.images,
        tiffs: a.tiffs,
        levels: a.levels,
        ..SampleSpec::default()
    };
    anyhow::ensure!(a.rows >= 1 && a.rows <= 26, "--rows must be 1..=26");
    anyhow::ensure!(
        a.columns >= 1 && a.fields >= 1 && a.channels >= 1 && a.z >= 1 && a.size >= 8,
        "sizes must be positive (size ≥ 8)"
    );
    let m = write_samples(&a.out, &spec)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&m)?);
    } else {
        println!(
            "wrote {} (plate {}×{} wells × {} fields) and {} images to {}",
            m.plate,
            a.rows,
            a.columns,
            a.fields,
            a.images,
            a.out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn convert(c: &ConvertCommand) -> anyhow::Result<ExitCode> {
    match c {
        ConvertCommand::ZarrToTiff(a) => {
            let bar = Bar::new("planes");
            let opts = TiffOptions {
                compression: if a.deflate {
                    TiffCompression::Deflate
                } else {
                    TiffCompression::None
                },
                force_bigtiff: a.bigtiff,
                ..TiffOptions::default()
            };
            let m = convert::stores_to_tiffs(&a.inputs, &a.out, &opts, &bar)?;
            bar.finish();
            if a.json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else {
                for e in &m.entries {
                    println!(
                        "{} ← {} ({} {})",
                        e.file,
                        e.source.display(),
                        e.report.axes,
                        dims(&e.report.shape)
                    );
                }
                println!("manifest: {}", a.out.join(convert::MANIFEST_FILE).display());
            }
        }
        ConvertCommand::TiffToZarr(a) => {
            let bar = Bar::new("planes");
            let compression = match a.codec {
                Codec::BloscZstd => Compression::BloscZstd {
                    level: u8::try_from(a.level.clamp(0, 9)).unwrap_or(1),
                },
                Codec::Zstd => Compression::Zstd { level: a.level },
                Codec::None => Compression::None,
            };
            let opts = ZarrOptions {
                version: a.ngff.into(),
                chunk_yx: (a.chunk, a.chunk),
                shard_yx: a.shard.map(|s| (s, s)),
                compression,
                levels: a.levels,
            };
            let r = convert::tiffs_to_zarrs(&a.inputs, &a.out, &opts, &bar)?;
            bar.finish();
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                for z in &r {
                    println!(
                        "{} ← {} ({} axes from {})",
                        z.store.display(),
                        z.source.display(),
                        z.dtype,
                        z.axes_from
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn inspect(a: &InspectArgs) -> anyhow::Result<ExitCode> {
    let i = stage_ngff::inspect::inspect(&a.path)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&i)?);
    } else {
        println!(
            "{}: {}, Zarr v{}, NGFF {}",
            i.path.display(),
            i.kind,
            match i.zarr_format {
                stage_ngff::ZarrFormat::V2 => 2,
                stage_ngff::ZarrFormat::V3 => 3,
            },
            i.ngff_version.as_deref().unwrap_or("?")
        );
        if let Some(p) = &i.plate {
            println!(
                "plate `{}`: rows {}, columns {}, {} wells, {} fields, acquisitions [{}]",
                p.name,
                p.rows.join(""),
                p.columns.join(","),
                p.wells,
                p.fields,
                p.acquisitions
                    .iter()
                    .map(|(id, name)| match name {
                        Some(n) => format!("{id} `{n}`"),
                        None => id.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for img in &i.images {
            let at = img.path.strip_prefix(&i.path).unwrap_or(&img.path);
            println!(
                "image `{}` ({}): {}",
                img.name,
                if at.as_os_str().is_empty() {
                    ".".to_owned()
                } else {
                    at.display().to_string()
                },
                img.dtype
            );
            println!(
                "  axes {}: t={} c={} z={} y={} x={}",
                img.axes.join(""),
                img.sizes.t,
                img.sizes.c,
                img.sizes.z,
                img.sizes.y,
                img.sizes.x
            );
            println!(
                "  channels [{}], labels [{}]",
                img.channels.join(", "),
                img.labels.join(", ")
            );
            for l in &img.levels {
                println!(
                    "  level {}: shape {} chunks {} ({} of {} chunk files)",
                    l.path,
                    dims(&l.shape),
                    dims(&l.chunks),
                    l.chunk_files,
                    l.chunks_expected
                );
            }
        }
        if i.problems.is_empty() {
            println!("no problems found");
        } else {
            println!("problems:");
            for p in &i.problems {
                println!("  - {p}");
            }
        }
    }
    Ok(if i.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `1×2×64×64`: a shape as people write it.
fn dims<T: std::fmt::Display>(d: &[T]) -> String {
    d.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("×")
}
