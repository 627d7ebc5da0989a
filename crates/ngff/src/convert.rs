//! The converters: OME-Zarr → TIFF (the "TIFF converter" of BIAFLOWS
//! workflows) and TIFF → OME-Zarr.
//!
//! Both stream: a reader thread fills plane buffers (decoding chunks on all
//! cores) while the writer thread writes the previous plane, with two buffers
//! in flight, so memory is a few planes whatever the image size. Batches run
//! images side by side. Zarr → TIFF writes TZCYX pages with OME-XML (YXC for
//! RGB images stored as CYX, as BIOMERO's converter does) and a manifest that
//! maps every TIFF back to its source image, plate, well and field.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::axes::Sizes;
use crate::double_buffer::{double_buffered, pipelined};
use crate::dtype::PixelType;
use crate::error::{NgffError, Result};
use crate::image::{ImageReader, PlaneReader, store_stem};
use crate::names::UniqueNames;
use crate::node::{NgffVersion, Node, NodeKind};
use crate::plate::PlateReader;
use crate::progress::Progress;
use crate::tiff::ome_xml::{self, PhysicalForXml};
use crate::tiff::read::{TiffInfo, TiffPages, inspect};
use crate::tiff::write::{TiffCompression, TiffLayout, TiffWriter};
use crate::write::array::Compression;
use crate::write::atomic::StagingDir;
use crate::write::attrs::ChannelSpec;
use crate::write::image::{ImageSpec, ImageWriter};

/// Options of Zarr → TIFF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TiffOptions {
    /// Strip compression.
    pub compression: TiffCompression,
    /// Always write BigTIFF.
    pub force_bigtiff: bool,
    /// Decoded-chunk cache per image, bytes.
    pub cache_bytes: usize,
    /// Bytes of one band of rows read and written at a time (rounded to whole chunk rows,
    /// at least one): memory does not grow with the plane.
    #[serde(default = "default_band_bytes")]
    pub band_bytes: usize,
}

fn default_band_bytes() -> usize {
    32 << 20
}

impl Default for TiffOptions {
    fn default() -> Self {
        TiffOptions {
            compression: TiffCompression::None,
            force_bigtiff: false,
            cache_bytes: 32 << 20,
            band_bytes: default_band_bytes(),
        }
    }
}

/// What one Zarr → TIFF conversion wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TiffReport {
    /// The TIFF.
    pub file: PathBuf,
    /// Axes of the TIFF (`TZCYX`, or `YXC` for RGB).
    pub axes: String,
    /// Shape in those axes.
    pub shape: Vec<u64>,
    /// Pixel type.
    pub dtype: PixelType,
    /// Bytes of pixels written.
    pub pixel_bytes: u64,
    /// Whether the file is a BigTIFF.
    pub bigtiff: bool,
    /// Chunks absent from the source store (read as 0).
    pub missing_chunks: u64,
}

fn physical_for_xml(img: &ImageReader) -> PhysicalForXml {
    let p = img.physical_sizes();
    let unit = |u: &Option<String>, d: &str| u.clone().unwrap_or_else(|| d.to_owned());
    PhysicalForXml {
        x: p.x.as_ref().map(|(v, u)| (*v, unit(u, "micrometer"))),
        y: p.y.as_ref().map(|(v, u)| (*v, unit(u, "micrometer"))),
        z: p.z
            .as_ref()
            .filter(|_| img.axes.z.is_some())
            .map(|(v, u)| (*v, unit(u, "micrometer"))),
        t: p.t
            .as_ref()
            .filter(|_| img.axes.t.is_some())
            .map(|(v, u)| (*v, unit(u, "second"))),
    }
}

/// Whether an image is written as interleaved RGB(A): axes exactly c, y, x with 3 or 4 channels of 8/16 bits.
pub fn is_rgb(img: &ImageReader) -> bool {
    img.axes.names == ["c", "y", "x"]
        && matches!(img.sizes().c, 3 | 4)
        && matches!(img.dtype, PixelType::Uint8 | PixelType::Uint16)
}

/// Converts the full-resolution level of one image to `target` (.tif), streaming.
pub fn image_to_tiff(
    img: &ImageReader,
    target: &Path,
    opts: &TiffOptions,
    progress: &dyn Progress,
) -> Result<TiffReport> {
    let s = img.sizes();
    let rgb = is_rgb(img);
    let plane_bytes = usize::try_from(img.plane_bytes()).unwrap_or(usize::MAX);
    let spp = if rgb {
        u16::try_from(s.c).unwrap_or(3)
    } else {
        1
    };
    let layout = TiffLayout {
        width: u32::try_from(s.x).map_err(|_| too_wide(img))?,
        height: u32::try_from(s.y).map_err(|_| too_wide(img))?,
        samples_per_pixel: spp,
        dtype: img.dtype,
        pages: if rgb { 1 } else { s.planes() },
        description: ome_xml::write(
            &img.name,
            s,
            img.dtype,
            "XYCZT",
            &physical_for_xml(img),
            &img.channel_specs(),
            rgb,
        ),
        compression: opts.compression,
    };
    let mut writer = TiffWriter::create(target, layout, opts.force_bigtiff)?;
    let bigtiff = writer.is_big();
    let mut reader = img.plane_reader(0, opts.cache_bytes)?;
    if rgb {
        write_rgb_page(&mut reader, &mut writer, plane_bytes, spp)?;
        progress.advance(s.c);
    } else {
        write_pages_in_bands(&mut reader, &mut writer, opts.band_bytes, progress)?;
    }
    let missing = reader.missing_chunks;
    let file = writer.finish()?;
    let (axes, shape) = if rgb {
        ("YXC".to_owned(), vec![s.y, s.x, s.c])
    } else {
        ("TZCYX".to_owned(), vec![s.t, s.z, s.c, s.y, s.x])
    };
    Ok(TiffReport {
        file,
        axes,
        shape,
        dtype: img.dtype,
        pixel_bytes: img.plane_bytes() * s.planes(),
        bigtiff,
        missing_chunks: missing,
    })
}

/// Writes the one interleaved YXC page of an RGB(A) image from its channel planes.
fn write_rgb_page(
    reader: &mut PlaneReader<'_>,
    writer: &mut TiffWriter,
    plane_bytes: usize,
    spp: u16,
) -> Result<()> {
    let s = reader.sizes();
    let es = reader.dtype_size();
    let n = usize::from(spp);
    let mut scratch = vec![0u8; plane_bytes];
    let mut page = vec![0u8; plane_bytes * n];
    for ch in 0..s.c {
        reader.read_plane(0, ch, 0, &mut scratch)?;
        let chu = usize::try_from(ch).unwrap_or(0);
        for (i, px) in scratch.chunks_exact(es).enumerate() {
            let o = (i * n + chu) * es;
            page[o..o + es].copy_from_slice(px);
        }
    }
    writer.write_page(&page)
}

/// Writes every plane (T, Z, C order, one page each) in bands of whole chunk rows: one
/// thread reads (decoding in parallel) the next band while this one writes the last, with
/// two band buffers, so memory is bounded by the band whatever the plane's size.
fn write_pages_in_bands(
    reader: &mut PlaneReader<'_>,
    writer: &mut TiffWriter,
    band_bytes: usize,
    progress: &dyn Progress,
) -> Result<()> {
    let s = reader.sizes();
    let row_bytes = s.x * reader.dtype_size() as u64;
    let chunk_rows = reader.chunk_rows();
    let per_band = (band_bytes as u64 / (chunk_rows * row_bytes).max(1)).max(1);
    let band_rows = (chunk_rows * per_band).min(s.y).max(1);
    let planes: Vec<(u64, u64, u64)> = (0..s.t)
        .flat_map(|t| (0..s.z).flat_map(move |z| (0..s.c).map(move |c| (t, z, c))))
        .collect();
    write_bands(
        &Bands {
            planes: s.planes(),
            height: s.y,
            row_bytes,
            band_rows,
        },
        |plane, y0, rows, buf| {
            let (t, z, c) = planes[usize::try_from(plane).unwrap_or(usize::MAX)];
            reader.read_rows(t, c, z, y0, rows, buf)
        },
        writer,
        progress,
    )
}

/// The bands of a run of pages: `planes` pages of `height` rows of `row_bytes`, read and
/// written `band_rows` rows at a time.
struct Bands {
    planes: u64,
    height: u64,
    row_bytes: u64,
    band_rows: u64,
}

/// Writes `b.planes` pages band by band: `read(plane, y0, rows, buf)` fills one band on a
/// second thread while this one writes the last, with two band buffers.
fn write_bands(
    b: &Bands,
    mut read: impl FnMut(u64, u64, u64, &mut Vec<u8>) -> Result<()> + Send,
    writer: &mut TiffWriter,
    progress: &dyn Progress,
) -> Result<()> {
    let band_rows = b.band_rows.min(b.height).max(1);
    let (height, row_bytes) = (b.height, b.row_bytes);
    let mut bands = (0..b.planes).flat_map(move |p| {
        (0..height)
            .step_by(usize::try_from(band_rows).unwrap_or(usize::MAX))
            .map(move |y0| (p, y0, band_rows.min(height - y0)))
    });
    let band_rows32 = u32::try_from(band_rows).unwrap_or(u32::MAX);
    pipelined(
        Vec::new,
        |buf| {
            let Some((p, y0, rows)) = bands.next() else {
                return Ok(None);
            };
            buf.resize(usize::try_from(rows * row_bytes).unwrap_or(usize::MAX), 0);
            read(p, y0, rows, buf)?;
            Ok(Some(()))
        },
        |pull| {
            for _ in 0..b.planes {
                writer.write_page_in_bands(
                    band_rows32,
                    &mut || Ok(pull.next()?.map(|((), band)| band)),
                    &mut |band| pull.recycle(band),
                )?;
                progress.advance(1);
            }
            Ok(())
        },
    )
}

fn too_wide(img: &ImageReader) -> NgffError {
    NgffError::TooLarge {
        path: img.root.clone(),
        message: "a TIFF page is at most 2^32 pixels wide or high".into(),
    }
}

/// One TIFF of a batch and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// File name in the output folder.
    pub file: String,
    /// The source image group.
    pub source: PathBuf,
    /// The source image's name.
    pub image: String,
    /// The plate, for plate fields.
    pub plate: Option<String>,
    /// The well (`A1`), for plate fields.
    pub well: Option<String>,
    /// Row name.
    pub row: Option<String>,
    /// Column name.
    pub column: Option<String>,
    /// Field path within the well.
    pub field: Option<String>,
    /// Acquisition id.
    pub acquisition: Option<i64>,
    /// The conversion report.
    pub report: TiffReport,
}

/// The manifest written beside the TIFFs (`manifest.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version.
    pub version: u32,
    /// What wrote it.
    pub created_by: String,
    /// One entry per TIFF.
    pub entries: Vec<ManifestEntry>,
}

/// The manifest's file name.
pub const MANIFEST_FILE: &str = "manifest.json";

/// One image to convert, before conversion.
#[derive(Debug, Clone)]
struct Job {
    source: PathBuf,
    name: String,
    plate: Option<(String, crate::plate::FieldRef)>,
}

fn expand(input: &Path) -> Result<Vec<Job>> {
    let node = Node::open(input)?;
    match node.kind() {
        NodeKind::Plate => {
            let plate = PlateReader::open(input)?;
            Ok(plate
                .fields
                .iter()
                .map(|f| Job {
                    source: f.dir.clone(),
                    name: format!("{}_{}_{}", plate.name, f.well_name(), f.field),
                    plate: Some((plate.name.clone(), f.clone())),
                })
                .collect())
        }
        NodeKind::Bioformats2Raw => {
            let series = crate::image::bioformats2raw_series(input)?;
            let stem = store_stem(input);
            Ok(series
                .iter()
                .map(|s| Job {
                    source: input.join(s),
                    name: if series.len() == 1 {
                        stem.clone()
                    } else {
                        format!("{stem}_{s}")
                    },
                    plate: None,
                })
                .collect())
        }
        NodeKind::Image { .. } => Ok(vec![Job {
            source: input.to_path_buf(),
            name: store_stem(input),
            plate: None,
        }]),
        other => Err(NgffError::metadata(
            input,
            format!("not an image, plate or bioformats2raw store (it is {other:?})"),
        )),
    }
}

/// Converts images, plates (every field) and bioformats2raw stores to TIFFs in
/// `out_dir` named `<image>.tif` (`<plate>_<well>_<field>.tif` for fields), and
/// writes `manifest.json`. Every input is checked before any TIFF is written.
pub fn stores_to_tiffs(
    inputs: &[PathBuf],
    out_dir: &Path,
    opts: &TiffOptions,
    progress: &dyn Progress,
) -> Result<Manifest> {
    let mut jobs = Vec::new();
    for i in inputs {
        jobs.extend(expand(i)?);
    }
    // check every image before writing anything; each is opened again when its turn comes,
    // so memory does not grow with the number of fields (a screen has tens of thousands)
    let mut planes = 0;
    for j in &jobs {
        planes += ImageReader::open(&j.source)?.sizes().planes();
    }
    progress.add_total(planes);
    std::fs::create_dir_all(out_dir).map_err(|e| NgffError::io(out_dir, e))?;
    let mut names = UniqueNames::new();
    let files: Vec<String> = jobs.iter().map(|j| names.claim(&j.name, ".tif")).collect();
    for f in &files {
        if out_dir.join(f).exists() {
            return Err(NgffError::Exists {
                path: out_dir.join(f),
            });
        }
    }
    let work: Vec<(&Job, &String)> = jobs.iter().zip(files.iter()).collect();
    let entries: Vec<ManifestEntry> =
        crate::jobs::run(&work, crate::jobs::default_parallelism(), |&(job, file)| {
            let img = ImageReader::open(&job.source)?;
            let report = image_to_tiff(&img, &out_dir.join(file), opts, progress)?;
            let (plate, f) = match &job.plate {
                Some((p, f)) => (Some(p.clone()), Some(f)),
                None => (None, None),
            };
            Ok(ManifestEntry {
                file: file.clone(),
                source: job.source.clone(),
                image: img.name.clone(),
                plate,
                well: f.map(crate::plate::FieldRef::well_name),
                row: f.map(|f| f.row.clone()),
                column: f.map(|f| f.column.clone()),
                field: f.map(|f| f.field.clone()),
                acquisition: f.and_then(|f| f.acquisition),
                report,
            })
        })?;
    let manifest = Manifest {
        version: 1,
        created_by: format!("biomero-stage {}", env!("CARGO_PKG_VERSION")),
        entries,
    };
    write_json_atomic(&out_dir.join(MANIFEST_FILE), &manifest)?;
    Ok(manifest)
}

/// Writes JSON atomically ([`stage_common::atomic`]), the error naming the file.
pub(crate) fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    stage_common::atomic::write_json(path, value).map_err(|e| NgffError::io(path, e))
}

/// Options of TIFF → OME-Zarr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZarrOptions {
    /// NGFF version.
    pub version: NgffVersion,
    /// Chunk size in y and x.
    pub chunk_yx: (u64, u64),
    /// Shard size in y and x (0.5 only).
    pub shard_yx: Option<(u64, u64)>,
    /// Compression.
    pub compression: Compression,
    /// Pyramid levels (1 = none).
    pub levels: u32,
}

impl Default for ZarrOptions {
    fn default() -> Self {
        ZarrOptions {
            version: NgffVersion::V04,
            chunk_yx: (1024, 1024),
            shard_yx: None,
            compression: Compression::default(),
            levels: 1,
        }
    }
}

/// What one TIFF → Zarr conversion wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZarrReport {
    /// The source TIFF.
    pub source: PathBuf,
    /// The store written.
    pub store: PathBuf,
    /// TCZYX sizes.
    pub sizes: Sizes,
    /// Pixel type.
    pub dtype: PixelType,
    /// Where the axes came from.
    pub axes_from: String,
}

/// The image spec a TIFF converts to.
pub fn spec_for_tiff(info: &TiffInfo, opts: &ZarrOptions) -> ImageSpec {
    let mut spec = ImageSpec::new(&info.name, info.sizes, info.dtype, opts.version);
    spec.chunk_yx = opts.chunk_yx;
    spec.shard_yx = opts.shard_yx;
    spec.compression = opts.compression;
    spec.levels = opts.levels;
    let [x, y, z] = info.physical_um;
    spec.pixel_size_zyx = [z.unwrap_or(1.0), y.unwrap_or(1.0), x.unwrap_or(1.0)];
    spec.time_step = info.time_step_s.unwrap_or(1.0);
    spec.channels =
        ChannelSpec::described(info.sizes.c, &info.channels, &info.colors, &info.windows);
    spec
}

/// Converts one TIFF/OME-TIFF to an OME-Zarr image at `target`, streaming page by page.
pub fn tiff_to_zarr(
    tiff: &Path,
    target: &Path,
    opts: &ZarrOptions,
    progress: &dyn Progress,
) -> Result<ZarrReport> {
    tiff_image_to_zarr(&inspect(tiff)?, target, opts, progress)
}

/// Converts one TIFF image (a series of a file, or of a multi-file fileset) to an OME-Zarr
/// image at `target`, streaming page by page.
pub fn tiff_image_to_zarr(
    info: &TiffInfo,
    target: &Path,
    opts: &ZarrOptions,
    progress: &dyn Progress,
) -> Result<ZarrReport> {
    progress.add_total(info.sizes.planes());
    let spec = spec_for_tiff(info, opts);
    let (staging, writer) = ImageWriter::create_store(target, spec)?;
    write_tiff_pages(info, &writer, progress)?;
    drop(writer);
    let store = staging.commit()?;
    Ok(ZarrReport {
        source: info.path.clone(),
        store,
        sizes: info.sizes,
        dtype: info.dtype,
        axes_from: info.source.to_owned(),
    })
}

/// Writes one TIFF image (a series of a file, or of a multi-file fileset) as a TIFF of its
/// own at `target`: TZCYX pages (interleaved pages stay interleaved) with OME-XML, as
/// BIOMERO's converter writes them, streaming page by page.
pub fn tiff_image_to_tiff(
    info: &TiffInfo,
    target: &Path,
    opts: &TiffOptions,
    progress: &dyn Progress,
) -> Result<TiffReport> {
    let s = info.sizes;
    let rgb = info.samples_per_pixel > 1;
    let too_big = || NgffError::TooLarge {
        path: target.to_path_buf(),
        message: "a TIFF page is at most 2^32 pixels wide or high".into(),
    };
    let um = |v: Option<f64>| v.map(|v| (v, "micrometer".to_owned()));
    let [x, y, z] = info.physical_um;
    let layout = TiffLayout {
        width: u32::try_from(s.x).map_err(|_| too_big())?,
        height: u32::try_from(s.y).map_err(|_| too_big())?,
        samples_per_pixel: info.samples_per_pixel.max(1),
        dtype: info.dtype,
        pages: info.pages,
        description: ome_xml::write(
            &info.name,
            s,
            info.dtype,
            "XYCZT",
            &PhysicalForXml {
                x: um(x),
                y: um(y),
                z: um(z),
                t: info.time_step_s.map(|v| (v, "second".to_owned())),
            },
            &ChannelSpec::described(s.c, &info.channels, &info.colors, &info.windows),
            rgb,
        ),
        compression: opts.compression,
    };
    progress.add_total(s.planes());
    let mut writer = TiffWriter::create(target, layout, opts.force_bigtiff)?;
    let bigtiff = writer.is_big();
    let mut pages = TiffPages::open(info)?;
    if !rgb && s.planes() > 0 {
        // one sample per pixel: read and written in bands of whole strips (or tile rows) of
        // the source, so memory follows the band, not the page
        let order: Vec<u64> = (0..s.t)
            .flat_map(|t| (0..s.z).flat_map(move |z| (0..s.c).map(move |c| (t, z, c))))
            .map(|(t, z, c)| info.page_index(t, z, c))
            .collect();
        let row_bytes = s.x * info.dtype.size() as u64;
        let band_rows = pages.band_rows(
            order[0],
            usize::try_from(row_bytes).unwrap_or(usize::MAX),
            opts.band_bytes,
        )?;
        let row_bytes_usize = usize::try_from(row_bytes).unwrap_or(usize::MAX);
        write_bands(
            &Bands {
                planes: s.planes(),
                height: s.y,
                row_bytes,
                band_rows: u64::from(band_rows),
            },
            |plane, y0, rows, buf| {
                let k = order[usize::try_from(plane).unwrap_or(usize::MAX)];
                let (y0, rows) = (
                    u32::try_from(y0).map_err(|_| too_big())?,
                    u32::try_from(rows).map_err(|_| too_big())?,
                );
                pages.read_rows(k, y0, rows, row_bytes_usize, buf)
            },
            &mut writer,
            progress,
        )?;
        return finish_tiff_report(writer, info, bigtiff);
    }
    let order: Vec<u64> = (0..s.t)
        .flat_map(|t| {
            (0..s.z).flat_map(move |z| {
                let cs = if rgb { 1 } else { s.c };
                (0..cs).map(move |c| (t, z, c))
            })
        })
        .map(|(t, z, c)| info.page_index(t, z, c))
        .collect();
    let mut order = order.into_iter();
    double_buffered(
        Vec::new,
        |buf| match order.next() {
            Some(k) => pages.read_page(k, buf).map(|()| Some(())),
            None => Ok(None),
        },
        |(), page| {
            writer.write_page(page)?;
            progress.advance(if rgb { s.c } else { 1 });
            Ok(())
        },
    )?;
    finish_tiff_report(writer, info, bigtiff)
}

/// Ends a TIFF written from a TIFF and says what it holds.
fn finish_tiff_report(writer: TiffWriter, info: &TiffInfo, bigtiff: bool) -> Result<TiffReport> {
    let s = info.sizes;
    let file = writer.finish()?;
    let (axes, shape) = if info.samples_per_pixel > 1 {
        ("TZYXC".to_owned(), vec![s.t, s.z, s.y, s.x, s.c])
    } else {
        ("TZCYX".to_owned(), vec![s.t, s.z, s.c, s.y, s.x])
    };
    Ok(TiffReport {
        file,
        axes,
        shape,
        dtype: info.dtype,
        pixel_bytes: s.planes() * s.y * s.x * info.dtype.size() as u64,
        bigtiff,
        missing_chunks: 0,
    })
}

/// Streams the pages of a TIFF into an image writer.
pub fn write_tiff_pages(
    info: &TiffInfo,
    writer: &ImageWriter,
    progress: &dyn Progress,
) -> Result<()> {
    let mut pages = TiffPages::open(info)?;
    let spp = usize::from(info.samples_per_pixel.max(1));
    let es = info.dtype.size();
    if spp == 1 && info.pages > 0 {
        return write_tiff_pages_in_bands(info, &mut pages, writer, progress);
    }
    let mut plane = Vec::new();
    double_buffered(
        Vec::new,
        |buf| pages.next_page(buf),
        |i, page| {
            let (t, z, c0) = info.page_position(i);
            if spp == 1 {
                writer.write_plane(t, c0, z, page)?;
                progress.advance(1);
            } else {
                plane.resize(page.len() / spp, 0);
                for ch in 0..spp {
                    for (j, px) in plane.chunks_exact_mut(es).enumerate() {
                        let o = (j * spp + ch) * es;
                        px.copy_from_slice(&page[o..o + es]);
                    }
                    writer.write_plane(t, c0 + ch as u64, z, &plane)?;
                    progress.advance(1);
                }
            }
            Ok(())
        },
    )
}

/// Streams the pages of a TIFF of one sample per pixel into an image writer band by band:
/// only the strips or tile rows a band holds are decoded, on a second thread while the last
/// band is written, so memory follows the band (about 32 MiB), not the page.
fn write_tiff_pages_in_bands(
    info: &TiffInfo,
    pages: &mut TiffPages,
    writer: &ImageWriter,
    progress: &dyn Progress,
) -> Result<()> {
    let s = info.sizes;
    let row_bytes = s.x * info.dtype.size() as u64;
    let row_usize = usize::try_from(row_bytes).unwrap_or(usize::MAX);
    let unit = writer.band_unit();
    let source = u64::from(pages.band_rows(0, row_usize, default_band_bytes())?);
    // whole strips of the source where they are a multiple of the writer's unit
    let band_rows = (source.div_ceil(unit) * unit).min(s.y).max(1);
    let rows32 = |v: u64| {
        u32::try_from(v).map_err(|_| NgffError::TooLarge {
            path: info.path.clone(),
            message: "a TIFF page is at most 2^32 pixels high".into(),
        })
    };
    let mut bands = (0..info.pages).flat_map(move |k| {
        (0..s.y)
            .step_by(usize::try_from(band_rows).unwrap_or(usize::MAX))
            .map(move |y0| (k, y0, band_rows.min(s.y - y0)))
    });
    pipelined(
        Vec::new,
        |buf| {
            let Some((k, y0, rows)) = bands.next() else {
                return Ok(None);
            };
            pages.read_rows(k, rows32(y0)?, rows32(rows)?, row_usize, buf)?;
            Ok(Some(k))
        },
        |pull| {
            for k in 0..info.pages {
                let (t, z, c) = info.page_position(k);
                let mut plane = writer.plane_in_bands(t, c, z);
                let mut done = 0;
                while done < s.y {
                    let Some((page, band)) = pull.next()? else {
                        return Err(NgffError::write(
                            writer.dir(),
                            format!("page {k} ended after {done} of {} rows", s.y),
                        ));
                    };
                    debug_assert_eq!(page, k);
                    plane.push(&band)?;
                    done += (band.len() / row_usize.max(1)) as u64;
                    pull.recycle(band);
                }
                plane.finish()?;
                progress.advance(1);
            }
            Ok(())
        },
    )
}

/// Converts TIFF files (or folders of `.tif`/`.tiff`) to `<out_dir>/<name>.ome.zarr`, several at once.
pub fn tiffs_to_zarrs(
    inputs: &[PathBuf],
    out_dir: &Path,
    opts: &ZarrOptions,
    progress: &dyn Progress,
) -> Result<Vec<ZarrReport>> {
    let mut files = Vec::new();
    for i in inputs {
        if i.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(i)
                .map_err(|e| NgffError::io(i, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                        e.eq_ignore_ascii_case("tif") || e.eq_ignore_ascii_case("tiff")
                    })
                })
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(i.clone());
        }
    }
    let infos: Vec<TiffInfo> = files.iter().map(|f| inspect(f)).collect::<Result<_>>()?;
    progress.add_total(infos.iter().map(|i| i.sizes.planes()).sum());
    std::fs::create_dir_all(out_dir).map_err(|e| NgffError::io(out_dir, e))?;
    let mut names = UniqueNames::new();
    let targets: Vec<PathBuf> = infos
        .iter()
        .map(|i| {
            let stem = i.path.file_name().map_or_else(
                || i.name.clone(),
                |_| {
                    let n = i
                        .path
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    n.strip_suffix(".ome").unwrap_or(&n).to_owned()
                },
            );
            out_dir.join(names.claim(&stem, ".ome.zarr"))
        })
        .collect();
    let work: Vec<(&TiffInfo, &PathBuf)> = infos.iter().zip(targets.iter()).collect();
    crate::jobs::run(
        &work,
        crate::jobs::default_parallelism(),
        |&(info, target)| {
            let spec = spec_for_tiff(info, opts);
            let staging = StagingDir::new(target)?;
            let writer = ImageWriter::create(staging.path(), spec)?;
            write_tiff_pages(info, &writer, progress)?;
            drop(writer);
            let store = staging.commit()?;
            Ok(ZarrReport {
                source: info.path.clone(),
                store,
                sizes: info.sizes,
                dtype: info.dtype,
                axes_from: info.source.to_owned(),
            })
        },
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::tiff::read::TiffPages;

    /// A 2-channel, 2-z image of odd size in chunks smaller than the plane.
    fn odd_image(dir: &Path) -> PathBuf {
        let sizes = Sizes {
            t: 1,
            c: 2,
            z: 2,
            y: 301,
            x: 257,
        };
        let mut spec = ImageSpec::new("odd", sizes, PixelType::Uint16, NgffVersion::V04);
        spec.chunk_yx = (64, 100);
        let (staging, w) = ImageWriter::create_store(&dir.join("odd.ome.zarr"), spec).unwrap();
        for c in 0..2u64 {
            for z in 0..2u64 {
                let plane: Vec<u8> = (0..301u64 * 257)
                    .flat_map(|i| {
                        u16::try_from((i * 7 + c * 1000 + z * 13) % 65_521)
                            .unwrap()
                            .to_ne_bytes()
                    })
                    .collect();
                w.write_plane(0, c, z, &plane).unwrap();
            }
        }
        staging.commit().unwrap()
    }

    #[test]
    fn planes_written_in_bands_are_the_planes_read_whole_for_any_band_size() {
        let d = tempfile::tempdir().unwrap();
        let store = odd_image(d.path());
        let img = ImageReader::open(&store).unwrap();
        let mut reader = img.plane_reader(0, 0).unwrap();
        let mut want = Vec::new();
        for (c, z) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            let mut p = vec![0u8; reader.plane_bytes()];
            reader.read_plane(0, c, z, &mut p).unwrap();
            want.push(p);
        }
        // one chunk row (64 rows), three (192), more than the plane
        for (band_bytes, compression) in [
            (1, TiffCompression::None),
            (3 * 64 * 257 * 2, TiffCompression::Deflate),
            (1 << 30, TiffCompression::None),
        ] {
            let target = d.path().join(format!("out-{band_bytes}.tif"));
            let opts = TiffOptions {
                compression,
                band_bytes,
                ..TiffOptions::default()
            };
            image_to_tiff(&img, &target, &opts, &()).unwrap();
            let info = crate::tiff::read::inspect(&target).unwrap();
            let mut pages = TiffPages::open(&info).unwrap();
            let mut buf = Vec::new();
            // pages are T, Z, C: (c0 z0), (c1 z0), (c0 z1), (c1 z1)
            for (i, w) in want.iter().enumerate() {
                assert!(
                    pages.next_page(&mut buf).unwrap().is_some(),
                    "page {i} is missing"
                );
                assert!(
                    buf == *w,
                    "page {i} differs with bands of {band_bytes} bytes"
                );
            }
            assert!(pages.next_page(&mut buf).unwrap().is_none());
        }
    }

    #[test]
    fn a_band_that_is_not_a_whole_number_of_strips_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let layout = TiffLayout {
            width: 10,
            height: 100,
            samples_per_pixel: 1,
            dtype: PixelType::Uint8,
            pages: 1,
            description: String::new(),
            compression: TiffCompression::None,
        };
        let mut w = TiffWriter::create(&d.path().join("x.tif"), layout, false).unwrap();
        // bands of 30 rows announced, then one of 7 rows before the page's end
        let mut sizes = vec![7usize, 30].into_iter();
        let e = w
            .write_page_in_bands(
                30,
                &mut || Ok(sizes.next().map(|r| vec![0u8; r * 10])),
                &mut |_| {},
            )
            .unwrap_err();
        assert!(e.to_string().contains("does not split into strips"), "{e}");
    }
}
