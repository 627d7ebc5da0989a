//! `inspect`: what a store is, and what is wrong with it.
//!
//! Never fails on broken content: every problem found (missing levels,
//! inconsistent axes, missing wells, mismatched labels, absent chunks) is
//! listed, so an admin sees everything at once.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::axes::Sizes;
use crate::error::Result;
use crate::image::{ImageReader, bioformats2raw_series};
use crate::node::{Node, NodeKind, ZarrFormat};
use crate::plate::PlateReader;

/// One level of an image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelSummary {
    /// Dataset path.
    pub path: String,
    /// Shape.
    pub shape: Vec<u64>,
    /// Chunk (or shard) shape.
    pub chunks: Vec<u64>,
    /// Chunk files present on disk.
    pub chunk_files: u64,
    /// Chunks in the grid.
    pub chunks_expected: u64,
}

/// One image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageSummary {
    /// The image group.
    pub path: PathBuf,
    /// Name.
    pub name: String,
    /// Axes.
    pub axes: Vec<String>,
    /// TCZYX sizes.
    pub sizes: Sizes,
    /// Pixel type.
    pub dtype: String,
    /// Levels.
    pub levels: Vec<LevelSummary>,
    /// Channel names.
    pub channels: Vec<String>,
    /// Label images.
    pub labels: Vec<String>,
}

/// A plate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlateSummary {
    /// Name.
    pub name: String,
    /// Rows.
    pub rows: Vec<String>,
    /// Columns.
    pub columns: Vec<String>,
    /// Wells listed.
    pub wells: usize,
    /// Fields found.
    pub fields: usize,
    /// Acquisitions (id, name).
    pub acquisitions: Vec<(i64, Option<String>)>,
}

/// The result of `inspect`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inspection {
    /// The path inspected.
    pub path: PathBuf,
    /// What it is.
    pub kind: NodeKind,
    /// Zarr format.
    pub zarr_format: ZarrFormat,
    /// NGFF version as declared.
    pub ngff_version: Option<String>,
    /// The plate, for plates.
    pub plate: Option<PlateSummary>,
    /// Images (the image itself, or a plate's first field, or each series).
    pub images: Vec<ImageSummary>,
    /// Problems found.
    pub problems: Vec<String>,
}

/// Chunk files level `level` of `img` lacks (chunks never written read as the fill value:
/// fine for sparse labels, and for writers that skip empty chunks; suspicious otherwise).
pub fn absent_chunks(img: &ImageReader, level: usize) -> u64 {
    img.levels.get(level).map_or(0, |l| {
        let grid: u64 = l
            .shape
            .iter()
            .zip(&l.chunks)
            .map(|(s, c)| s.div_ceil((*c).max(1)))
            .product();
        grid.saturating_sub(count_files(&img.root.join(&l.path)))
    })
}

fn count_files(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                count_files(&p)
            } else {
                u64::from(!(name.starts_with('.') || name == "zarr.json"))
            }
        })
        .sum()
}

fn summarize(img: &ImageReader, problems: &mut Vec<String>) -> ImageSummary {
    problems.extend(img.conformance_problems());
    // the check `plan` refuses on (ImageReader::checked_labels), reported for every label
    let labels = match img.label_names() {
        Ok(l) => l,
        Err(e) => {
            problems.push(e.to_string());
            Vec::new()
        }
    };
    for l in &labels {
        if let Err(e) = img.label(l) {
            problems.push(e.to_string());
        }
    }
    let levels = img
        .levels
        .iter()
        .map(|l| {
            let grid: u64 = l.shape.iter().zip(&l.chunks).map(|(s, c)| s.div_ceil(*c)).product();
            let files = count_files(&img.root.join(&l.path));
            if files < grid && l.path == img.levels[0].path {
                problems.push(format!(
                    "{}: level `{}` has {files} of {grid} chunk files; absent chunks read as 0 (fine for sparse labels, suspicious for images)",
                    img.root.display(),
                    l.path
                ));
            }
            LevelSummary { path: l.path.clone(), shape: l.shape.clone(), chunks: l.chunks.clone(), chunk_files: files, chunks_expected: grid }
        })
        .collect();
    ImageSummary {
        path: img.root.clone(),
        name: img.name.clone(),
        axes: img.axes.names.clone(),
        sizes: img.sizes(),
        dtype: img.dtype.to_string(),
        levels,
        channels: img.channel_names(),
        labels,
    }
}

/// Inspects a store; only an unreadable path is an error, everything else is a problem.
pub fn inspect(path: &Path) -> Result<Inspection> {
    let node = Node::open(path)?;
    let mut out = Inspection {
        path: path.to_path_buf(),
        kind: node.kind(),
        zarr_format: node.format,
        ngff_version: node.declared_version(),
        plate: None,
        images: Vec::new(),
        problems: Vec::new(),
    };
    match node.kind() {
        NodeKind::Image { .. } => match ImageReader::open(path) {
            Ok(img) => {
                let s = summarize(&img, &mut out.problems);
                out.images.push(s);
            }
            Err(e) => out.problems.push(e.to_string()),
        },
        NodeKind::Plate => match PlateReader::open(path) {
            Ok(p) => {
                out.plate = Some(PlateSummary {
                    name: p.name.clone(),
                    rows: p.rows(),
                    columns: p.columns(),
                    wells: p.meta.wells.len(),
                    fields: p.fields.len(),
                    acquisitions: p
                        .acquisitions()
                        .iter()
                        .map(|a| (a.id, a.name.clone()))
                        .collect(),
                });
                for f in &p.fields {
                    match p.open_field(f) {
                        Ok(img) => {
                            let s = summarize(&img, &mut out.problems);
                            if out.images.is_empty() {
                                out.images.push(s);
                            }
                        }
                        Err(e) => out.problems.push(e.to_string()),
                    }
                }
            }
            Err(e) => out.problems.push(e.to_string()),
        },
        NodeKind::Bioformats2Raw => {
            for s in bioformats2raw_series(path)? {
                match ImageReader::open(&path.join(&s)) {
                    Ok(img) => {
                        let sm = summarize(&img, &mut out.problems);
                        out.images.push(sm);
                    }
                    Err(e) => out.problems.push(e.to_string()),
                }
            }
        }
        _ => {}
    }
    Ok(out)
}
