//! Deterministic synthetic data: an HCS plate with a label image per field,
//! and single images, in either NGFF version.
//!
//! Tests, benchmarks and the demo share this data. Each field shows round
//! "cells" on a jittered grid over a smooth background, with per-channel
//! brightness, a z profile and a little hash-based noise; the `cells` label
//! image numbers the cells. The same seed gives the same pixels on any machine,
//! and `MANIFEST.json` records the SHA-256 of every image's level-0 pixels
//! (little-endian, C order, TCZYX) so independent readers can check them.

#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::cast_lossless,
    reason = "a synthetic pixel generator: integer/float conversions of small coordinates are intended"
)]

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use stage_ngff::axes::Sizes;
use stage_ngff::dtype::PixelType;
use stage_ngff::error::Result;
use stage_ngff::node::NgffVersion;
use stage_ngff::tiff::ome_xml::{self, PhysicalForXml};
use stage_ngff::tiff::write::{TiffCompression, TiffLayout, TiffWriter};
use stage_ngff::write::atomic::StagingDir;
use stage_ngff::write::attrs::{AcquisitionSpec, ChannelSpec, DEFAULT_COLORS};
use stage_ngff::write::image::{ImageSpec, ImageWriter};
use stage_ngff::write::plate::{PlateSpec, PlateWriter, WellSpec, label_image};

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleSpec {
    /// NGFF version of the stores.
    pub version: NgffVersion,
    /// Plate rows (A, B, …).
    pub rows: u32,
    /// Plate columns (1, 2, …).
    pub columns: u32,
    /// Fields per well.
    pub fields: u32,
    /// Channels per image.
    pub channels: u32,
    /// Z planes per image.
    pub z: u32,
    /// Field and image size in pixels (square).
    pub size: u32,
    /// Number of single images.
    pub images: u32,
    /// Also write each single image as an OME-TIFF.
    pub tiffs: bool,
    /// Pyramid levels.
    pub levels: u32,
    /// Seed.
    pub seed: u64,
}

impl Default for SampleSpec {
    fn default() -> Self {
        SampleSpec {
            version: NgffVersion::V04,
            rows: 2,
            columns: 3,
            fields: 2,
            channels: 2,
            z: 1,
            size: 512,
            images: 3,
            tiffs: false,
            levels: 1,
            seed: 20_250_601,
        }
    }
}

/// One generated image in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleImage {
    /// Path relative to the output folder.
    pub path: String,
    /// TCZYX shape.
    pub shape: [u64; 5],
    /// Pixel type.
    pub dtype: PixelType,
    /// SHA-256 of the level-0 pixels (little-endian, C order).
    pub sha256: String,
    /// The label image, if any: (name, number of cells, SHA-256 of its pixels).
    pub labels: Option<SampleLabels>,
}

impl SampleSpec {
    /// The TCZYX sizes of every generated image.
    fn sizes(&self) -> Sizes {
        Sizes {
            t: 1,
            c: u64::from(self.channels),
            z: u64::from(self.z),
            y: u64::from(self.size),
            x: u64::from(self.size),
        }
    }
}

impl SampleImage {
    /// A generated uint16 image of `spec`'s shape at `path`, with its checksums.
    fn of(spec: &SampleSpec, path: String, sha256: String, labels: SampleLabels) -> Self {
        SampleImage {
            path,
            shape: spec.sizes().tczyx(),
            dtype: PixelType::Uint16,
            sha256,
            labels: Some(labels),
        }
    }
}

/// A generated label image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleLabels {
    /// Label image name.
    pub name: String,
    /// Number of labelled cells.
    pub objects: u32,
    /// SHA-256 of its pixels (uint32, little-endian, C order, TCZYX).
    pub sha256: String,
}

/// What was generated (`MANIFEST.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleManifest {
    /// The spec used.
    pub spec: SampleSpec,
    /// The plate store, relative.
    pub plate: String,
    /// Every image (plate fields first).
    pub images: Vec<SampleImage>,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Cells of one image: jittered grid centres and radii.
struct Cells {
    spacing: u32,
    centres: Vec<(f32, f32, f32)>,
    grid: u32,
}

impl Cells {
    fn new(seed: u64, size: u32) -> Self {
        let spacing = 48u32.min(size.max(8));
        let grid = size.div_ceil(spacing);
        let mut centres = Vec::with_capacity((grid * grid) as usize);
        for i in 0..grid * grid {
            let h = splitmix(seed ^ u64::from(i).wrapping_mul(0x1234_5678_9ABC_DEF1));
            let present = !h.is_multiple_of(5); // some grid places stay empty
            let jy = ((h >> 8) % 1000) as f32 / 1000.0 - 0.5;
            let jx = ((h >> 20) % 1000) as f32 / 1000.0 - 0.5;
            let r = if present {
                spacing as f32 * (0.22 + ((h >> 32) % 100) as f32 / 1000.0)
            } else {
                0.0
            };
            let gy = (i / grid) as f32;
            let gx = (i % grid) as f32;
            let s = spacing as f32;
            centres.push((
                gy * s + s / 2.0 + jy * s * 0.3,
                gx * s + s / 2.0 + jx * s * 0.3,
                r,
            ));
        }
        Cells {
            spacing,
            centres,
            grid,
        }
    }

    /// (label, soft intensity 0..1) at a pixel.
    fn at(&self, y: u32, x: u32) -> (u32, f32) {
        let (gy, gx) = ((y / self.spacing) as i64, (x / self.spacing) as i64);
        let (mut label, mut best) = (0u32, 0f32);
        for dy in -1..=1 {
            for dx in -1..=1 {
                let (cy, cx) = (gy + dy, gx + dx);
                if cy < 0 || cx < 0 || cy >= i64::from(self.grid) || cx >= i64::from(self.grid) {
                    continue;
                }
                let idx = (cy * i64::from(self.grid) + cx) as usize;
                let (py, px, r) = self.centres[idx];
                if r <= 0.0 {
                    continue;
                }
                let d = ((y as f32 - py).powi(2) + (x as f32 - px).powi(2)).sqrt();
                if d < r {
                    let v = 1.0 - (d / r).powi(2) * 0.5;
                    if v > best {
                        best = v;
                        label = u32::try_from(idx).unwrap_or(0) + 1;
                    }
                }
            }
        }
        (label, best)
    }
}

const AMPLITUDE: [f32; 4] = [3000.0, 1200.0, 600.0, 900.0];

/// The label plane of an image (its cells numbered, native-endian uint32) and how many cells it has.
fn label_plane(cells: &Cells, sizes: Sizes) -> (Vec<u8>, u32) {
    let mut labels = vec![0u8; (sizes.y * sizes.x * 4) as usize];
    labels
        .par_chunks_mut((sizes.x * 4) as usize)
        .enumerate()
        .for_each(|(y, row)| {
            for (x, px) in row.chunks_exact_mut(4).enumerate() {
                px.copy_from_slice(&cells.at(y as u32, x as u32).0.to_ne_bytes());
            }
        });
    let objects: std::collections::BTreeSet<u32> = labels
        .chunks_exact(4)
        .filter_map(|px| {
            let l = u32::from_ne_bytes([px[0], px[1], px[2], px[3]]);
            (l > 0).then_some(l)
        })
        .collect();
    (labels, u32::try_from(objects.len()).unwrap_or(0))
}

/// One uint16 plane (native-endian) of channel `c`, plane `z`: background, cells, noise.
fn pixel_plane(seed: u64, cells: &Cells, sizes: Sizes, c: u64, z: u64) -> Vec<u8> {
    let n = sizes.y as u32;
    let zc = (sizes.z as f32 - 1.0) / 2.0;
    let zf = (-((z as f32 - zc) / (sizes.z as f32 / 3.0).max(1.0)).powi(2)).exp();
    let mut plane = vec![0u8; (sizes.y * sizes.x * 2) as usize];
    plane
        .par_chunks_mut((sizes.x * 2) as usize)
        .enumerate()
        .for_each(|(y, row)| {
            for x in 0..sizes.x as u32 {
                let (_, v) = cells.at(y as u32, x);
                let bg = 100.0 + 150.0 * ((y as f32 + x as f32) / (2.0 * n as f32));
                let h = splitmix(
                    seed ^ (u64::from(c as u32) << 48)
                        ^ (z << 40)
                        ^ ((y as u64) << 20)
                        ^ u64::from(x),
                );
                let noise = (h % 64) as f32 - 32.0;
                let val =
                    (bg + AMPLITUDE[c as usize % 4] * zf * v + noise).clamp(0.0, 65535.0) as u16;
                row[x as usize * 2..x as usize * 2 + 2].copy_from_slice(&val.to_ne_bytes());
            }
        });
    plane
}

/// Feeds native-endian samples of `es` bytes to `h` as little-endian.
fn hash_le(h: &mut Sha256, chunk: &[u8], es: usize) {
    if cfg!(target_endian = "little") {
        h.update(chunk);
    } else {
        let mut v = chunk.to_vec();
        v.chunks_exact_mut(es).for_each(<[u8]>::reverse);
        h.update(&v);
    }
}

fn hex(h: Sha256) -> String {
    h.finalize()
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn write_one(
    dir: &Path,
    name: &str,
    spec: &SampleSpec,
    seed: u64,
) -> Result<(String, SampleLabels)> {
    let sizes = spec.sizes();
    let cells = Cells::new(seed, sizes.y as u32);
    let mut is = ImageSpec::new(name, sizes, PixelType::Uint16, spec.version);
    is.levels = spec.levels;
    is.pixel_size_zyx = [0.5, 0.1625, 0.1625];
    is.chunk_yx = (512, 512);
    is.channels = (0..spec.channels as usize)
        .map(|c| ChannelSpec {
            label: format!("ch{c}"),
            color: DEFAULT_COLORS[c % DEFAULT_COLORS.len()].to_owned(),
            window: Some((100.0, 100.0 + f64::from(AMPLITUDE[c % 4]))),
        })
        .collect();
    let w = ImageWriter::create(dir, is.clone())?;
    // plane by plane, hashed as written: memory holds one plane whatever the image's size
    let mut pixels = Sha256::new();
    for c in 0..sizes.c {
        for z in 0..sizes.z {
            let plane = pixel_plane(seed, &cells, sizes, c, z);
            w.write_plane(0, c, z, &plane)?;
            hash_le(&mut pixels, &plane, 2);
        }
    }
    // labels: one per z plane (same cells), a single channel
    let (labels, objects) = label_plane(&cells, sizes);
    let lsizes = Sizes { c: 1, ..sizes };
    let mut ls = ImageSpec::new("cells", lsizes, PixelType::Uint32, spec.version);
    ls.levels = spec.levels;
    ls.pixel_size_zyx = is.pixel_size_zyx;
    ls.chunk_yx = is.chunk_yx;
    ls.label_colors = Some(vec![(1, [255, 255, 0, 255])]);
    let lw = label_image(dir, "cells", ls)?;
    let mut lh = Sha256::new();
    for z in 0..sizes.z {
        lw.write_plane(0, 0, z, &labels)?;
        hash_le(&mut lh, &labels, 4);
    }
    Ok((
        hex(pixels),
        SampleLabels {
            name: "cells".into(),
            objects,
            sha256: hex(lh),
        },
    ))
}

fn write_tiff(path: &Path, name: &str, spec: &SampleSpec, seed: u64) -> Result<()> {
    let sizes = spec.sizes();
    let cells = Cells::new(seed, sizes.y as u32);
    let channels: Vec<ChannelSpec> = (0..spec.channels as usize)
        .map(|c| ChannelSpec {
            label: format!("ch{c}"),
            color: DEFAULT_COLORS[c % DEFAULT_COLORS.len()].to_owned(),
            window: Some((100.0, 100.0 + f64::from(AMPLITUDE[c % 4]))),
        })
        .collect();
    let phys = PhysicalForXml {
        x: Some((0.1625, "micrometer".into())),
        y: Some((0.1625, "micrometer".into())),
        z: Some((0.5, "micrometer".into())),
        t: None,
    };
    let layout = TiffLayout {
        width: spec.size,
        height: spec.size,
        samples_per_pixel: 1,
        dtype: PixelType::Uint16,
        pages: sizes.planes(),
        description: ome_xml::write(
            name,
            sizes,
            PixelType::Uint16,
            "XYZCT",
            &phys,
            &channels,
            false,
        ),
        compression: TiffCompression::None,
    };
    let mut w = TiffWriter::create(path, layout, false)?;
    // planes are generated c-major, z-minor: that is DimensionOrder XYZCT
    for c in 0..sizes.c {
        for z in 0..sizes.z {
            w.write_page(&pixel_plane(seed, &cells, sizes, c, z))?;
        }
    }
    w.finish()?;
    Ok(())
}

/// Writes the plate, the images (and TIFFs) and `MANIFEST.json` into `out`.
pub fn write_samples(out: &Path, spec: &SampleSpec) -> Result<SampleManifest> {
    std::fs::create_dir_all(out).map_err(|e| stage_ngff::error::NgffError::io(out, e))?;
    let rows: Vec<String> = (0..spec.rows)
        .map(|r| char::from(b'A' + (r % 26) as u8).to_string())
        .collect();
    let columns: Vec<String> = (1..=spec.columns).map(|c| c.to_string()).collect();
    let wells: Vec<WellSpec> = (0..rows.len())
        .flat_map(|r| (0..columns.len()).map(move |c| (r, c)))
        .map(|(row, column)| WellSpec {
            row,
            column,
            fields: (0..spec.fields).map(|f| (f.to_string(), Some(0))).collect(),
        })
        .collect();
    let plate_name = "plate.ome.zarr";
    let staging = StagingDir::new(&out.join(plate_name))?;
    let plate = PlateWriter::create(
        staging.path(),
        PlateSpec {
            name: "synthetic_plate".into(),
            rows: rows.clone(),
            columns: columns.clone(),
            wells: wells.clone(),
            acquisitions: vec![AcquisitionSpec {
                id: 0,
                name: "acq0".into(),
                max_fields: spec.fields,
            }],
            version: spec.version,
        },
    )?;
    let jobs: Vec<(usize, usize, String, u64)> = wells
        .iter()
        .enumerate()
        .flat_map(|(wi, w)| {
            w.fields.iter().enumerate().map(move |(fi, (f, _))| {
                (
                    w.row,
                    w.column,
                    f.clone(),
                    100 + (wi as u64) * 16 + fi as u64,
                )
            })
        })
        .collect();
    let mut images: Vec<SampleImage> = jobs
        .par_iter()
        .map(|(r, c, f, id)| {
            let dir = plate.field_dir(*r, *c, f);
            let name = format!("{}{}_f{f}", rows[*r], columns[*c]);
            let (sha, labels) = write_one(&dir, &name, spec, spec.seed ^ splitmix(*id))?;
            Ok(SampleImage::of(
                spec,
                format!("{plate_name}/{}/{}/{f}", rows[*r], columns[*c]),
                sha,
                labels,
            ))
        })
        .collect::<Result<_>>()?;
    staging.commit()?;
    let singles: Vec<SampleImage> = (0..spec.images)
        .into_par_iter()
        .map(|i| -> Result<SampleImage> {
            let name = format!("image_{i:02}");
            let rel = format!("images/{name}.ome.zarr");
            let seed = spec.seed ^ splitmix(1000 + u64::from(i));
            let st = StagingDir::new(&out.join(&rel))?;
            let (sha, labels) = write_one(st.path(), &name, spec, seed)?;
            st.commit()?;
            if spec.tiffs {
                let tdir = out.join("tiffs");
                std::fs::create_dir_all(&tdir)
                    .map_err(|e| stage_ngff::error::NgffError::io(&tdir, e))?;
                write_tiff(&tdir.join(format!("{name}.ome.tif")), &name, spec, seed)?;
            }
            Ok(SampleImage::of(spec, rel, sha, labels))
        })
        .collect::<Result<_>>()?;
    images.extend(singles);
    let manifest = SampleManifest {
        spec: *spec,
        plate: plate_name.into(),
        images,
    };
    let path = out.join("MANIFEST.json");
    stage_common::atomic::write_json(&path, &manifest)
        .map_err(|e| stage_ngff::error::NgffError::io(&path, e))?;
    Ok(manifest)
}

/// Writes one single image of `spec`'s shape (its `images`, `rows`, `columns`, `fields` and
/// `tiffs` are not used) as the store `out/name.ome.zarr`, plane by plane: memory holds one
/// plane, so images far larger than memory can be generated. The same seed gives the same pixels.
pub fn write_image(out: &Path, name: &str, spec: &SampleSpec) -> Result<SampleImage> {
    std::fs::create_dir_all(out).map_err(|e| stage_ngff::error::NgffError::io(out, e))?;
    let rel = format!("{name}.ome.zarr");
    let st = StagingDir::new(&out.join(&rel))?;
    let (sha, labels) = write_one(st.path(), name, spec, spec.seed)?;
    st.commit()?;
    Ok(SampleImage::of(spec, rel, sha, labels))
}

/// Paths of the generated single images.
pub fn image_paths(out: &Path, manifest: &SampleManifest) -> Vec<PathBuf> {
    manifest
        .images
        .iter()
        .filter(|i| i.path.starts_with("images/"))
        .map(|i| out.join(&i.path))
        .collect()
}
