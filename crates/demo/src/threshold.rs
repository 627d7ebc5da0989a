//! The demo's workflow (`biomero-stage demo-threshold`, run by
//! `config/demo/threshold.sh`): segments every image of `data/in` by Otsu's
//! threshold on its first channel and 4-connected components, and writes the
//! labels to `data/out` the way real workflows do:
//!
//! - a TIFF becomes a label TIFF of the same name (uint16, BIAFLOWS style);
//! - an OME-Zarr image is written back with a `labels/threshold` label image;
//! - an HCS plate is written back with `labels/threshold` in every field.
//!
//! Zarr outputs are hard-linked copies of the inputs plus the new labels, so
//! the inputs are never modified. `threshold-report.json` lists the objects found.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;
use stage_ngff::copy::{is_zarr_dir, pass_through, store_version};
use stage_ngff::tiff::read::{TiffPages, inspect};
use stage_ngff::tiff::write::{TiffCompression, TiffLayout, TiffWriter};
use stage_ngff::write::array::Compression;
use stage_ngff::write::image::ImageSpec;
use stage_ngff::write::plate::label_image;
use stage_ngff::{ImageReader, Node, NodeKind, PixelType, PlateReader, Sizes};

/// The name of the label image written into Zarr outputs.
pub const LABEL_NAME: &str = "threshold";
/// The report written beside the outputs.
pub const REPORT: &str = "threshold-report.json";

/// What was segmented.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct ThresholdReport {
    /// One entry per segmented image (a plate gives one per field).
    pub images: Vec<Segmented>,
}

/// One segmented image.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Segmented {
    /// The output written, relative to `data/out`.
    pub output: String,
    /// Objects found.
    pub objects: u32,
    /// The threshold used (Otsu on the first channel).
    pub threshold: f64,
}

/// Pixel values of one plane as numbers.
fn values(bytes: &[u8], dtype: PixelType) -> Vec<f64> {
    macro_rules! le {
        ($t:ty) => {
            bytes
                .chunks_exact(std::mem::size_of::<$t>())
                .map(|c| {
                    let mut a = [0u8; std::mem::size_of::<$t>()];
                    a.copy_from_slice(c);
                    f64::from(<$t>::from_le_bytes(a))
                })
                .collect()
        };
    }
    match dtype {
        PixelType::Uint8 => bytes.iter().map(|&b| f64::from(b)).collect(),
        PixelType::Int8 => bytes.iter().map(|&b| f64::from(b.cast_signed())).collect(),
        PixelType::Uint16 => le!(u16),
        PixelType::Int16 => le!(i16),
        PixelType::Uint32 => le!(u32),
        PixelType::Int32 => le!(i32),
        PixelType::Float32 => le!(f32),
        PixelType::Float64 => le!(f64),
    }
}

/// Otsu's threshold over a 256-bin histogram between the plane's minimum and maximum.
pub fn otsu(v: &[f64]) -> f64 {
    let (lo, hi) = v
        .iter()
        .filter(|x| x.is_finite())
        .fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
    if v.is_empty() || hi <= lo {
        return hi;
    }
    let width = (hi - lo) / 256.0;
    let mut hist = [0u64; 256];
    for &x in v.iter().filter(|x| x.is_finite()) {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let b = (((x - lo) / width) as usize).min(255);
        hist[b] += 1;
    }
    #[allow(clippy::cast_precision_loss)]
    let total = hist.iter().sum::<u64>() as f64;
    #[allow(clippy::cast_precision_loss)]
    let sum_all: f64 = hist
        .iter()
        .enumerate()
        .map(|(i, &n)| i as f64 * n as f64)
        .sum();
    let (mut w0, mut sum0, mut best, mut best_bin) = (0.0, 0.0, -1.0, 0usize);
    for (i, &n) in hist.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let (n, fi) = (n as f64, i as f64);
        w0 += n;
        sum0 += fi * n;
        let w1 = total - w0;
        if w0 == 0.0 || w1 == 0.0 {
            continue;
        }
        let between = w0 * w1 * (sum0 / w0 - (sum_all - sum0) / w1).powi(2);
        if between > best {
            best = between;
            best_bin = i;
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let t = lo + (best_bin as f64 + 1.0) * width;
    t
}

/// 4-connected components of the pixels above `threshold`, objects smaller than
/// `min_size` pixels dropped; labels 1..=n in scan order.
pub fn components(v: &[f64], width: usize, threshold: f64, min_size: usize) -> (Vec<u32>, u32) {
    let mut labels = vec![0u32; v.len()];
    let mut next = 0u32;
    let mut stack = Vec::new();
    let mut members = Vec::new();
    for start in 0..v.len() {
        if labels[start] != 0 || v[start] <= threshold {
            continue;
        }
        next += 1;
        labels[start] = next;
        stack.push(start);
        members.clear();
        while let Some(p) = stack.pop() {
            members.push(p);
            let (y, x) = (p / width, p % width);
            let mut visit = |q: usize| {
                if labels[q] == 0 && v[q] > threshold {
                    labels[q] = next;
                    stack.push(q);
                }
            };
            if x > 0 {
                visit(p - 1);
            }
            if x + 1 < width {
                visit(p + 1);
            }
            if y > 0 {
                visit(p - width);
            }
            if p + width < v.len() {
                visit(p + width);
            }
        }
        if members.len() < min_size {
            for &p in &members {
                labels[p] = u32::MAX; // too small: cleared below, never revisited
            }
            next -= 1;
        }
    }
    for l in &mut labels {
        if *l == u32::MAX {
            *l = 0;
        }
    }
    (labels, next)
}

/// Segments every image of `input` into `output`.
pub fn run(input: &Path, output: &Path, min_size: usize) -> anyhow::Result<ThresholdReport> {
    std::fs::create_dir_all(output)
        .with_context(|| format!("cannot create {}", output.display()))?;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(input)
        .with_context(|| format!("cannot list {}", input.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut report = ThresholdReport::default();
    let total = entries.len();
    for (i, path) in entries.iter().enumerate() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tiff_file = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("tif") || e.eq_ignore_ascii_case("tiff"));
        if is_zarr_dir(path) {
            zarr(path, &output.join(&name), &name, min_size, &mut report)?;
        } else if tiff_file {
            report
                .images
                .push(tiff(path, &output.join(&name), &name, min_size)?);
        } else {
            println!("skipping {name}: not a TIFF or an OME-Zarr");
        }
        println!("threshold: {name} done {}%", (i + 1) * 100 / total.max(1));
    }
    stage_common::atomic::write_json(&output.join(REPORT), &report)?;
    Ok(report)
}

fn tiff(path: &Path, out: &Path, name: &str, min_size: usize) -> anyhow::Result<Segmented> {
    let info = inspect(path)?;
    let mut pages = TiffPages::open(&info)?;
    let mut buf = Vec::new();
    pages
        .next_page(&mut buf)?
        .with_context(|| format!("{} has no pages", path.display()))?;
    let mut v = values(&buf, info.dtype);
    let spp = usize::from(info.samples_per_pixel.max(1));
    if spp > 1 {
        v = v.into_iter().step_by(spp).collect(); // the first sample of RGB pixels
    }
    let width = usize::try_from(info.sizes.x)?;
    let t = otsu(&v);
    let (labels, n) = components(&v, width, t, min_size);
    let n16 = u16::try_from(n).with_context(|| format!("{name}: {n} objects do not fit uint16"))?;
    let mut w = TiffWriter::create(
        out,
        TiffLayout {
            width: u32::try_from(info.sizes.x)?,
            height: u32::try_from(info.sizes.y)?,
            samples_per_pixel: 1,
            dtype: PixelType::Uint16,
            pages: 1,
            description: String::new(),
            compression: TiffCompression::None,
        },
        false,
    )?;
    let bytes: Vec<u8> = labels
        .iter()
        .flat_map(|&l| u16::try_from(l).unwrap_or(n16).to_le_bytes())
        .collect();
    w.write_page(&bytes)?;
    w.finish()?;
    Ok(Segmented {
        output: name.to_owned(),
        objects: n,
        threshold: t,
    })
}

fn zarr(
    src: &Path,
    out: &Path,
    name: &str,
    min_size: usize,
    report: &mut ThresholdReport,
) -> anyhow::Result<()> {
    let version = store_version(src)?;
    pass_through(src, out, version, Compression::default())?;
    if Node::open(out)?.kind() == NodeKind::Plate {
        let plate = PlateReader::open(out)?;
        for f in &plate.fields {
            let rel = format!("{name}/{}/{}/{}", f.row, f.column, f.field);
            report.images.push(label(&f.dir, rel, min_size)?);
        }
    } else {
        report.images.push(label(out, name.to_owned(), min_size)?);
    }
    Ok(())
}

/// Adds `labels/threshold` to the image at `dir` (every z plane of its first channel, t = 0).
fn label(dir: &Path, rel: String, min_size: usize) -> anyhow::Result<Segmented> {
    let img = ImageReader::open(dir)?;
    let sizes = img.sizes();
    let mut reader = img.plane_reader(0, 64 << 20)?;
    let mut plane = vec![0u8; reader.plane_bytes()];
    let mut spec = ImageSpec::new(
        LABEL_NAME,
        Sizes {
            t: 1,
            c: 1,
            ..sizes
        },
        PixelType::Uint32,
        img.version,
    );
    spec.label_colors = Some(vec![(1, [255, 0, 0, 255])]);
    let width = usize::try_from(sizes.x)?;
    let mut planes = Vec::new();
    let (mut objects, mut threshold) = (0, 0.0);
    for z in 0..sizes.z {
        reader.read_plane(0, 0, z, &mut plane)?;
        let v = values(&plane, img.dtype);
        let t = otsu(&v);
        let (labels, n) = components(&v, width, t, min_size);
        objects = objects.max(n);
        threshold = t;
        planes.push(labels);
    }
    let w = label_image(dir, LABEL_NAME, spec)?;
    for (z, labels) in (0u64..).zip(&planes) {
        let bytes: Vec<u8> = labels.iter().flat_map(|l| l.to_le_bytes()).collect();
        w.write_plane(0, 0, z, &bytes)?;
    }
    Ok(Segmented {
        output: rel,
        objects,
        threshold,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn two_blobs_are_two_objects_and_specks_are_dropped() {
        // 6×4: a 2×2 blob, a 1-pixel speck, a 3-pixel bar, on a dark background
        #[rustfmt::skip]
        let v: Vec<f64> = vec![
            9., 9., 0., 0., 0., 9.,
            9., 9., 0., 0., 0., 0.,
            0., 0., 0., 0., 0., 0.,
            0., 0., 9., 9., 9., 0.,
        ];
        let t = otsu(&v);
        assert!(t > 0.0 && t < 9.0, "{t}");
        let (labels, n) = components(&v, 6, t, 2);
        assert_eq!(n, 2);
        assert_eq!(&labels[..6], &[1, 1, 0, 0, 0, 0]);
        assert_eq!(&labels[18..], &[0, 0, 2, 2, 2, 0]);
        let (_, n) = components(&v, 6, t, 1);
        assert_eq!(n, 3);
    }
}
