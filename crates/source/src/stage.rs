//! Executing a [`Plan`] into a staging directory: `<root>/data/in/<outputs>`
//! and `<root>/stage-manifest.json`.
//!
//! Each output is written under a temporary name and renamed when complete,
//! so an output that exists is finished: a restarted stage step skips it and
//! continues with the next (resumed, never duplicated). What already is on
//! disk in the wanted form is passed through (hard links where the
//! filesystem allows); everything else streams plane by plane through the
//! ngff engine — OMERO tiles are fetched for the next plane while the
//! previous one is encoded and written, so memory stays at a few planes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use stage_ngff::convert::{
    TiffOptions, ZarrOptions, image_to_tiff, spec_for_tiff, tiff_image_to_tiff, tiff_image_to_zarr,
    write_tiff_pages,
};
use stage_ngff::copy::{Sharding, pass_through_sharded};
use stage_ngff::progress::Progress;
use stage_ngff::tiff::ome_xml::{self, PhysicalForXml};
use stage_ngff::tiff::read::TiffInfo;
use stage_ngff::tiff::write::{TiffLayout, TiffWriter};
use stage_ngff::write::array::Compression;
use stage_ngff::write::atomic::StagingDir;
use stage_ngff::write::attrs::{AcquisitionSpec, ChannelSpec};
use stage_ngff::write::image::{ImageSpec, ImageWriter};
use stage_ngff::write::plate::{PlateSpec, PlateWriter, WellSpec};
use stage_ngff::{ImageReader, NgffError, NgffVersion, Sizes};
use tracing::Instrument as _;

use crate::error::{Result, SourceError};
use crate::export::{ExportRequest, Exporter};
use crate::omero::OmeroClient;
use crate::omero::tiles::fetch_plane;
use crate::plan::{
    OmeroPixels, Origin, OutputFormat, PixelSource, Plan, PlannedImage, PlannedPlate, PlateSource,
};

/// The folder of staged inputs under a staging root.
pub const INPUTS_DIR: &str = "data/in";
/// The manifest beside it.
pub const MANIFEST_FILE: &str = "stage-manifest.json";

/// How to stage.
#[derive(Clone)]
pub struct StageContext {
    /// OMERO, for pixel-buffer tiles (and the exporter's session).
    pub omero: Option<Arc<OmeroClient>>,
    /// OMERO's exporter, for images planned from it.
    pub exporter: Option<Arc<Exporter>>,
    /// The submission's OMERO group (the exporter acts in it).
    pub group: String,
    /// Where each line the exporter prints goes (the submission's history).
    pub log: Arc<dyn Fn(String) + Send + Sync>,
    /// Progress in planes.
    pub progress: Arc<dyn Progress + Send + Sync>,
    /// Set to stop between planes and outputs.
    pub cancel: Arc<AtomicBool>,
    /// TIFF options.
    pub tiff: TiffOptions,
    /// Compression of written OME-Zarr.
    pub compression: Compression,
    /// Whether a re-encode into NGFF 0.5 writes shards.
    pub sharding: Sharding,
    /// Told each output's name (relative to `data/in`) once it is complete in place, so it
    /// can be sent on while the rest is staged; outputs found from an earlier run are not told.
    pub on_staged: Option<Arc<dyn Fn(&str) + Send + Sync>>,
}

/// How one output was staged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum How {
    /// Found complete from an earlier run.
    AlreadyStaged,
    /// Hard-linked or copied verbatim.
    Linked,
    /// Re-encoded into the other NGFF version.
    Reencoded,
    /// Converted (Zarr → TIFF, TIFF → Zarr).
    Converted,
    /// Fetched from the pixel service.
    Fetched,
    /// Assembled field by field (a plate from OMERO).
    Assembled,
    /// Exported by OMERO's exporter, then converted or linked.
    Exported,
}

impl std::fmt::Display for How {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            How::AlreadyStaged => "already staged",
            How::Linked => "linked",
            How::Reencoded => "re-encoded",
            How::Converted => "converted",
            How::Fetched => "fetched",
            How::Assembled => "assembled",
            How::Exported => "exported by OMERO",
        })
    }
}

/// One staged output, as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Name in `data/in`.
    pub output: String,
    /// Format.
    pub format: OutputFormat,
    /// Image or plate name.
    pub name: String,
    /// Where it came from.
    pub origin: Origin,
    /// For plates: every field's origin.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<Origin>,
    /// Pixel bytes.
    pub bytes: u64,
    /// How it was staged.
    pub how: How,
    /// Seconds it took.
    pub seconds: f64,
    /// Where its pixels came from (`zarr`, `tiff-file`, `pixel-service`, `omero-export`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// Why the output is not named exactly as BIOMERO names it (a name taken, an unsafe one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renamed: Option<String>,
}

/// `stage-manifest.json`: what was staged and where it came from (the result step matches outputs with it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageManifest {
    /// Format version (1).
    pub version: u32,
    /// What wrote it.
    pub created_by: String,
    /// NGFF version of staged OME-Zarr.
    pub ngff_version: String,
    /// One entry per output.
    pub entries: Vec<ManifestEntry>,
}

fn version_of(plan: &Plan) -> NgffVersion {
    NgffVersion::parse(&plan.ngff_version).unwrap_or(NgffVersion::V04)
}

fn check(ctx: &StageContext) -> Result<()> {
    if ctx.cancel.load(Ordering::Relaxed) {
        Err(SourceError::Cancelled)
    } else {
        Ok(())
    }
}

/// Stages everything in `plan` under `root`; outputs already there are kept.
pub async fn execute(plan: &Plan, root: &Path, ctx: &StageContext) -> Result<StageManifest> {
    let dir = root.join(INPUTS_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| SourceError::io(&dir, e))?;
    remove_leftovers(&dir)?;
    let total: u64 = plan
        .images
        .iter()
        .map(|i| planes_of(&i.source))
        .sum::<u64>();
    ctx.progress.add_total(total);
    let version = version_of(plan);
    let exported = export_all(plan, root, version, ctx).await?;
    let mut entries = Vec::new();
    for img in &plan.images {
        check(ctx)?;
        let target = dir.join(&img.output);
        let started = Instant::now();
        let how = if target.exists() {
            ctx.progress.advance(planes_of(&img.source));
            How::AlreadyStaged
        } else {
            // attached to the future: a span entered across an `.await` corrupts the registry
            let span = tracing::info_span!("stage_image", output = %img.output);
            let how = stage_image(img, &target, version, ctx, &exported)
                .instrument(span)
                .await?;
            if let Some(tell) = &ctx.on_staged {
                tell(&img.output);
            }
            how
        };
        tracing::info!(output = %img.output, how = %how, seconds = started.elapsed().as_secs_f64(), "staged");
        entries.push(ManifestEntry {
            output: img.output.clone(),
            format: img.format,
            name: img.name.clone(),
            origin: img.origin.clone(),
            fields: Vec::new(),
            bytes: img.bytes,
            how,
            seconds: started.elapsed().as_secs_f64(),
            source: img.source.kind().to_owned(),
            renamed: img.renamed.clone(),
        });
        ctx.progress.output_done(img.bytes);
    }
    for p in &plan.plates {
        check(ctx)?;
        let target = dir.join(&p.output);
        let started = Instant::now();
        let how = if target.exists() {
            How::AlreadyStaged
        } else {
            let how = stage_plate(p, &target, version, ctx, &exported).await?;
            if let Some(tell) = &ctx.on_staged {
                tell(&p.output);
            }
            how
        };
        tracing::info!(output = %p.output, how = %how, seconds = started.elapsed().as_secs_f64(), "staged");
        entries.push(ManifestEntry {
            output: p.output.clone(),
            format: OutputFormat::ZarrPlate,
            name: p.name.clone(),
            origin: p.origin.clone(),
            fields: plate_fields(p),
            bytes: p.bytes,
            how,
            seconds: started.elapsed().as_secs_f64(),
            source: match &p.source {
                PlateSource::Zarr { .. } => "zarr".to_owned(),
                PlateSource::Omero { .. } => "omero".to_owned(),
            },
            renamed: None,
        });
        ctx.progress.output_done(p.bytes);
    }
    let manifest = StageManifest {
        version: 1,
        created_by: format!("biomero-stage {}", env!("CARGO_PKG_VERSION")),
        ngff_version: plan.ngff_version.clone(),
        entries,
    };
    let path = root.join(MANIFEST_FILE);
    stage_common::atomic::write_json(&path, &manifest)
        .map_err(|e| NgffError::io(&path, e))
        .map_err(|source| SourceError::Write {
            output: MANIFEST_FILE.into(),
            source: Box::new(source),
        })?;
    Ok(manifest)
}

/// The folder exports of a submission go to, beside `data/in` (not uploaded).
pub const EXPORTS_DIR: &str = "exports";

/// Every image the plan takes from OMERO's exporter, exported (at most the exporter's
/// concurrency at a time, across the daemon) into `<root>/exports/<image>.ome.zarr`; an
/// export finished by an earlier attempt is kept.
async fn export_all(
    plan: &Plan,
    root: &Path,
    version: NgffVersion,
    ctx: &StageContext,
) -> Result<HashMap<i64, PathBuf>> {
    let mut wanted: Vec<(i64, OmeroPixels)> = Vec::new();
    let fields = plan.plates.iter().flat_map(|p| match &p.source {
        PlateSource::Omero { wells, .. } => wells
            .iter()
            .flat_map(|w| w.fields.iter().map(|f| &f.source))
            .collect::<Vec<_>>(),
        PlateSource::Zarr { .. } => Vec::new(),
    });
    for source in plan.images.iter().map(|i| &i.source).chain(fields) {
        if let PixelSource::Export { image, pixels } = source
            && !wanted.iter().any(|(i, _)| i == image)
        {
            wanted.push((*image, pixels.clone()));
        }
    }
    let mut done = HashMap::new();
    if wanted.is_empty() {
        return Ok(done);
    }
    let exporter = ctx.exporter.clone().ok_or_else(|| {
        SourceError::NotConfigured(format!(
            "Image {} is to be exported by OMERO's exporter, but omero_export_command is not set (any more); set it, or plan the submission again",
            wanted[0].0
        ))
    })?;
    let client = ctx.omero.clone().ok_or_else(|| {
        SourceError::NotConfigured(
            "OMERO's exporter needs a session of omero_user, but OMERO is not configured".into(),
        )
    })?;
    let session = Arc::new(client.session_key().await?);
    let dir = root.join(EXPORTS_DIR);
    let mut set = tokio::task::JoinSet::new();
    for (image, pixels) in wanted {
        let (exporter, session, dir) = (exporter.clone(), session.clone(), dir.clone());
        let (group, log, progress) = (ctx.group.clone(), ctx.log.clone(), ctx.progress.clone());
        set.spawn(async move {
            let req = ExportRequest {
                image,
                pixels: &pixels,
                group: &group,
                session: &session,
                format: version,
                dir: &dir,
            };
            let line = |l: String| log(format!("Image {image}: {l}"));
            let r = exporter.export(&req, &line).await;
            progress.advance(0);
            (image, r)
        });
    }
    let mut first_error = None;
    while let Some(r) = set.join_next().await {
        match r {
            Ok((image, Ok(path))) => {
                done.insert(image, path);
            }
            Ok((_, Err(e))) => {
                // the others are left to finish: their stores are kept for the next attempt
                first_error.get_or_insert(SourceError::Export(Box::new(e)));
            }
            Err(e) => {
                first_error.get_or_insert(SourceError::NotConfigured(format!(
                    "an export task failed: {e}"
                )));
            }
        }
        check(ctx)?;
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

/// Removes what an interrupted run left half-written (only one run stages a submission at a time).
fn remove_leftovers(dir: &Path) -> Result<()> {
    for e in std::fs::read_dir(dir).map_err(|e| SourceError::io(dir, e))? {
        let e = e.map_err(|e| SourceError::io(dir, e))?;
        if stage_ngff::write::atomic::is_partial(&e.file_name().to_string_lossy()) {
            let p = e.path();
            tracing::info!(path = %p.display(), "removing what an interrupted run left half-written");
            let r = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            r.map_err(|e| SourceError::io(&p, e))?;
        }
    }
    Ok(())
}

fn plate_fields(p: &PlannedPlate) -> Vec<Origin> {
    match &p.source {
        PlateSource::Zarr { .. } => Vec::new(),
        PlateSource::Omero {
            rows,
            columns,
            wells,
            ..
        } => wells
            .iter()
            .flat_map(|w| {
                w.fields.iter().map(move |f| Origin {
                    image_id: Some(f.image_id),
                    well: Some(format!("{}{}", rows[w.row], columns[w.column])),
                    field: Some(f.path.clone()),
                    acquisition: f.acquisition,
                    ..Origin::default()
                })
            })
            .collect(),
    }
}

fn planes_of(s: &PixelSource) -> u64 {
    match s {
        PixelSource::OmeroTiles { pixels, .. } => pixels.sizes.planes(),
        // conversions report their own totals
        _ => 0,
    }
}

async fn blocking<T: Send + 'static>(
    output: &str,
    f: impl FnOnce() -> stage_ngff::Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SourceError::Write {
            output: output.to_owned(),
            source: Box::new(NgffError::Invalid {
                message: format!("the staging task failed: {e}"),
            }),
        })?
        .map_err(|source| SourceError::Write {
            output: output.to_owned(),
            source: Box::new(source),
        })
}

/// An OMERO image's original file, read again as planned: series `series` of `path`, its
/// pages only in the fileset's `files` checked at planning, with OMERO's channel names,
/// colours and windows (`omero`) put on it.
fn original(
    path: &Path,
    series: usize,
    files: &[PathBuf],
    omero: Option<&OmeroPixels>,
) -> stage_ngff::Result<TiffInfo> {
    let mut info = stage_ngff::tiff::read::inspect_series(path, series)?;
    let allowed = |f: &PathBuf| f == path || files.contains(f);
    if let Some(stray) = info.files.iter().find(|f| !allowed(f)) {
        return Err(NgffError::Invalid {
            message: format!(
                "{} now names {}, which was not a file of its fileset when the submission was planned",
                path.display(),
                stray.display()
            ),
        });
    }
    if let Some(px) = omero {
        if px.sizes != info.sizes || px.dtype != info.dtype {
            return Err(NgffError::Invalid {
                message: format!(
                    "{} changed since planning: it holds {} {} pixels, OMERO describes {} {}",
                    path.display(),
                    info.sizes,
                    info.dtype,
                    px.sizes,
                    px.dtype
                ),
            });
        }
        if !px.channels.is_empty() {
            info.channels.clone_from(&px.channels);
        }
        if !px.colors.is_empty() {
            info.colors.clone_from(&px.colors);
        }
        if !px.windows.is_empty() {
            info.windows.clone_from(&px.windows);
        }
    }
    Ok(info)
}

/// The store an image's pixels are read from when they are an OME-Zarr: its own, or the
/// one OMERO's exporter wrote for it.
fn zarr_of<'a>(source: &'a PixelSource, exported: &'a HashMap<i64, PathBuf>) -> Option<&'a Path> {
    match source {
        PixelSource::Zarr { path } => Some(path),
        PixelSource::Export { image, .. } => exported.get(image).map(PathBuf::as_path),
        _ => None,
    }
}

async fn stage_image(
    img: &PlannedImage,
    target: &Path,
    version: NgffVersion,
    ctx: &StageContext,
    exported: &HashMap<i64, PathBuf>,
) -> Result<How> {
    let t = target.to_path_buf();
    let progress = ctx.progress.clone();
    let (tiff, compression, sharding) = (ctx.tiff, ctx.compression, ctx.sharding);
    let via_export = matches!(img.source, PixelSource::Export { .. });
    if let Some(path) = zarr_of(&img.source, exported) {
        let path = path.to_path_buf();
        return if img.format == OutputFormat::Tiff {
            blocking(&img.output, move || {
                let reader = ImageReader::open(&path)?;
                progress.add_total(reader.sizes().planes());
                image_to_tiff(&reader, &t, &tiff, &*progress).map(|_| {
                    if via_export {
                        How::Exported
                    } else {
                        How::Converted
                    }
                })
            })
            .await
        } else {
            blocking(&img.output, move || {
                pass_through_sharded(&path, &t, version, compression, sharding).map(|r| {
                    match r.mode {
                        _ if via_export => How::Exported,
                        stage_ngff::copy::CopyMode::Reencode => How::Reencoded,
                        _ => How::Linked,
                    }
                })
            })
            .await
        };
    }
    match (&img.source, img.format) {
        (
            PixelSource::Tiff {
                path,
                series,
                files,
                omero,
            },
            format,
        ) => {
            let (path, series, files, omero) =
                (path.clone(), *series, files.clone(), omero.clone());
            let opts = ZarrOptions {
                version,
                compression,
                ..ZarrOptions::default()
            };
            blocking(&img.output, move || {
                let info = original(&path, series, &files, omero.as_ref())?;
                if format != OutputFormat::Tiff {
                    tiff_image_to_zarr(&info, &t, &opts, &*progress).map(|_| How::Converted)
                } else if info.is_whole_file() {
                    // the file holds exactly this image: handed on as it is
                    link_file(&path, &t).map(|()| How::Linked)
                } else {
                    tiff_image_to_tiff(&info, &t, &tiff, &*progress).map(|_| How::Converted)
                }
            })
            .await
        }
        (PixelSource::OmeroTiles { image, pixels }, format) => {
            let sink = if format == OutputFormat::Tiff {
                Sink::tiff(target, &img.name, pixels, ctx.tiff)
            } else {
                Sink::zarr(target, image_spec(&img.name, pixels, version, compression))
            }
            .map_err(|source| SourceError::Write {
                output: img.output.clone(),
                source: Box::new(source),
            })?;
            fetch_into(*image, pixels, sink, &img.output, ctx).await?;
            Ok(How::Fetched)
        }
        (PixelSource::Zarr { .. } | PixelSource::Export { .. }, _) => {
            Err(SourceError::NotConfigured(format!(
                "{}: its export is missing after the export step",
                img.output
            )))
        }
    }
}

/// Hard-links `from` to `to` (a copy across filesystems), through a temporary name.
fn link_file(from: &Path, to: &Path) -> stage_ngff::Result<()> {
    let tmp = to.with_file_name(format!(
        ".{}.partial-{}",
        to.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    if std::fs::hard_link(from, &tmp).is_err() {
        std::fs::copy(from, &tmp).map_err(|e| NgffError::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, to).map_err(|e| NgffError::io(to, e))
}

fn image_spec(
    name: &str,
    px: &OmeroPixels,
    version: NgffVersion,
    compression: Compression,
) -> ImageSpec {
    let mut spec = ImageSpec::new(name, px.sizes, px.dtype, version);
    spec.compression = compression;
    let [z, y, x] = px.physical_zyx_um;
    spec.pixel_size_zyx = [z.unwrap_or(1.0), y.unwrap_or(1.0), x.unwrap_or(1.0)];
    spec.channels = channel_specs(px);
    spec
}

/// The channels of an OMERO image as OMERO renders them (names, colours, windows), the
/// defaults where OMERO said nothing.
fn channel_specs(px: &OmeroPixels) -> Vec<ChannelSpec> {
    ChannelSpec::described(px.sizes.c, &px.channels, &px.colors, &px.windows)
}

/// Where fetched planes go.
enum Sink {
    Tiff(TiffWriter),
    Zarr(StagingDir, ImageWriter),
    /// A field of a plate being assembled (committed with the plate).
    Field(ImageWriter),
}

impl Sink {
    fn tiff(
        target: &Path,
        name: &str,
        px: &OmeroPixels,
        opts: TiffOptions,
    ) -> stage_ngff::Result<Self> {
        let s = px.sizes;
        let too_big = || NgffError::TooLarge {
            path: target.to_path_buf(),
            message: "a TIFF page is at most 2^32 pixels wide or high".into(),
        };
        let um = |v: Option<f64>| v.map(|v| (v, "micrometer".to_owned()));
        let [z, y, x] = px.physical_zyx_um;
        let layout = TiffLayout {
            width: u32::try_from(s.x).map_err(|_| too_big())?,
            height: u32::try_from(s.y).map_err(|_| too_big())?,
            samples_per_pixel: 1,
            dtype: px.dtype,
            pages: s.planes(),
            description: ome_xml::write(
                name,
                s,
                px.dtype,
                "XYCZT",
                &PhysicalForXml {
                    x: um(x),
                    y: um(y),
                    z: um(z),
                    t: None,
                },
                &channel_specs(px),
                false,
            ),
            compression: opts.compression,
        };
        Ok(Sink::Tiff(TiffWriter::create(
            target,
            layout,
            opts.force_bigtiff,
        )?))
    }

    fn zarr(target: &Path, spec: ImageSpec) -> stage_ngff::Result<Self> {
        let (staging, writer) = ImageWriter::create_store(target, spec)?;
        Ok(Sink::Zarr(staging, writer))
    }

    /// Takes planes in (t, z, c) order, c fastest — the TIFF page order.
    fn write(&mut self, (t, c, z): (u64, u64, u64), plane: &[u8]) -> stage_ngff::Result<()> {
        match self {
            Sink::Tiff(w) => w.write_page(plane),
            Sink::Zarr(_, w) | Sink::Field(w) => w.write_plane(t, c, z, plane),
        }
    }

    fn finish(self) -> stage_ngff::Result<()> {
        match self {
            Sink::Tiff(w) => w.finish().map(|_| ()),
            Sink::Zarr(staging, w) => {
                drop(w);
                staging.commit().map(|_| ())
            }
            Sink::Field(w) => {
                drop(w);
                Ok(())
            }
        }
    }
}

fn plane_order(s: Sizes) -> impl Iterator<Item = (u64, u64, u64)> {
    (0..s.t).flat_map(move |t| (0..s.z).flat_map(move |z| (0..s.c).map(move |c| (t, c, z))))
}

/// Fetches every plane of `image` and writes it to `sink`; fetching plane k+1 overlaps writing plane k.
async fn fetch_into(
    image: i64,
    px: &OmeroPixels,
    sink: Sink,
    output: &str,
    ctx: &StageContext,
) -> Result<()> {
    let client = ctx.omero.clone().ok_or_else(|| {
        SourceError::NotConfigured(format!(
            "{output}: Image {image} needs OMERO's pixel service, but OMERO is not configured"
        ))
    })?;
    let plane_bytes =
        usize::try_from(px.sizes.x * px.sizes.y).unwrap_or(usize::MAX) * px.dtype.size();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<((u64, u64, u64), Vec<u8>)>(1);
    let (back_tx, mut back_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let progress = ctx.progress.clone();
    let abandon = Arc::new(AtomicBool::new(false));
    let abandoned = abandon.clone();
    let writer = tokio::task::spawn_blocking(move || -> stage_ngff::Result<()> {
        let mut sink = sink;
        while let Some((pos, buf)) = rx.blocking_recv() {
            sink.write(pos, &buf)?;
            progress.advance(1);
            let _ = back_tx.send(buf);
        }
        if abandoned.load(Ordering::SeqCst) {
            // dropped unfinished: the partial output is removed, never renamed into place
            return Ok(());
        }
        sink.finish()
    });
    let mut spare = vec![vec![0u8; plane_bytes], vec![0u8; plane_bytes]];
    let mut fetched: Result<()> = Ok(());
    for pos in plane_order(px.sizes) {
        if let Err(e) = check(ctx) {
            fetched = Err(e);
            break;
        }
        let mut buf = match spare.pop() {
            Some(b) => b,
            None => match back_rx.recv().await {
                Some(b) => b,
                None => break, // the writer stopped; its error is reported below
            },
        };
        if let Err(e) = fetch_plane(&client, image, px, pos, &mut buf).await {
            fetched = Err(e);
            break;
        }
        if tx.send((pos, buf)).await.is_err() {
            break;
        }
    }
    if fetched.is_err() {
        abandon.store(true, Ordering::SeqCst);
        drop(tx);
        let _ = writer.await;
        return fetched;
    }
    drop(tx);
    writer
        .await
        .map_err(|e| SourceError::Write {
            output: output.to_owned(),
            source: Box::new(NgffError::Invalid {
                message: format!("the writer failed: {e}"),
            }),
        })?
        .map_err(|source| SourceError::Write {
            output: output.to_owned(),
            source: Box::new(source),
        })
}

async fn stage_plate(
    p: &PlannedPlate,
    target: &Path,
    version: NgffVersion,
    ctx: &StageContext,
    exported: &HashMap<i64, PathBuf>,
) -> Result<How> {
    match &p.source {
        PlateSource::Zarr { path } => {
            let (path, t, compression, sharding) = (
                path.clone(),
                target.to_path_buf(),
                ctx.compression,
                ctx.sharding,
            );
            blocking(&p.output, move || {
                pass_through_sharded(&path, &t, version, compression, sharding).map(|r| {
                    match r.mode {
                        stage_ngff::copy::CopyMode::Reencode => How::Reencoded,
                        _ => How::Linked,
                    }
                })
            })
            .await
        }
        PlateSource::Omero {
            rows,
            columns,
            acquisitions,
            wells,
        } => {
            let write_err = |source| SourceError::Write {
                output: p.output.clone(),
                source: Box::new(source),
            };
            let spec = PlateSpec {
                name: p.name.clone(),
                rows: rows.clone(),
                columns: columns.clone(),
                wells: wells
                    .iter()
                    .map(|w| WellSpec {
                        row: w.row,
                        column: w.column,
                        fields: w
                            .fields
                            .iter()
                            .map(|f| (f.path.clone(), f.acquisition))
                            .collect(),
                    })
                    .collect(),
                acquisitions: acquisitions
                    .iter()
                    .map(|a| AcquisitionSpec {
                        id: a.id,
                        name: a.name.clone(),
                        max_fields: a.max_fields,
                    })
                    .collect(),
                version,
            };
            let staging = StagingDir::new(target).map_err(write_err)?;
            let plate = Arc::new(PlateWriter::create(staging.path(), spec).map_err(write_err)?);
            for w in wells {
                for f in &w.fields {
                    check(ctx)?;
                    if let Some(path) = zarr_of(&f.source, exported) {
                        let (plate, path, row, column, field) = (
                            plate.clone(),
                            path.to_path_buf(),
                            w.row,
                            w.column,
                            f.path.clone(),
                        );
                        let (name, compression, progress) =
                            (f.name.clone(), ctx.compression, ctx.progress.clone());
                        blocking(&p.output, move || {
                            copy_planes(
                                &plate,
                                &path,
                                (row, column, &field),
                                &name,
                                version,
                                compression,
                                &*progress,
                            )
                        })
                        .await?;
                        continue;
                    }
                    match &f.source {
                        PixelSource::OmeroTiles { image, pixels } => {
                            let spec = image_spec(&f.name, pixels, version, ctx.compression);
                            let writer = plate
                                .field(w.row, w.column, &f.path, spec)
                                .map_err(write_err)?;
                            ctx.progress.add_total(pixels.sizes.planes());
                            fetch_into(*image, pixels, Sink::Field(writer), &p.output, ctx).await?;
                        }
                        PixelSource::Tiff {
                            path,
                            series,
                            files,
                            omero,
                        } => {
                            let (plate, path, series, files, omero) = (
                                plate.clone(),
                                path.clone(),
                                *series,
                                files.clone(),
                                omero.clone(),
                            );
                            let (row, column, field, name) =
                                (w.row, w.column, f.path.clone(), f.name.clone());
                            let (compression, progress) = (ctx.compression, ctx.progress.clone());
                            blocking(&p.output, move || {
                                let mut info = original(&path, series, &files, omero.as_ref())?;
                                info.name = name;
                                let opts = ZarrOptions {
                                    version,
                                    compression,
                                    ..ZarrOptions::default()
                                };
                                let writer = plate.field(
                                    row,
                                    column,
                                    &field,
                                    spec_for_tiff(&info, &opts),
                                )?;
                                progress.add_total(info.sizes.planes());
                                write_tiff_pages(&info, &writer, &*progress)
                            })
                            .await?;
                        }
                        PixelSource::Zarr { .. } | PixelSource::Export { .. } => {
                            return Err(SourceError::NotConfigured(format!(
                                "{}: the export of Image {} is missing after the export step",
                                p.output, f.image_id
                            )));
                        }
                    }
                }
            }
            drop(plate);
            staging.commit().map_err(write_err)?;
            Ok(How::Assembled)
        }
    }
}

/// Copies the full-resolution planes of the image at `src` into a new field of `plate`.
fn copy_planes(
    plate: &PlateWriter,
    src: &Path,
    (row, column, field): (usize, usize, &str),
    name: &str,
    version: NgffVersion,
    compression: Compression,
    progress: &dyn Progress,
) -> stage_ngff::Result<()> {
    let img = ImageReader::open(src)?;
    let s = img.sizes();
    let mut spec = ImageSpec::new(name, s, img.dtype, version);
    spec.compression = compression;
    let ps = img.physical_sizes();
    spec.pixel_size_zyx = [
        ps.z.map_or(1.0, |v| v.0),
        ps.y.map_or(1.0, |v| v.0),
        ps.x.map_or(1.0, |v| v.0),
    ];
    spec.channels = img.channel_specs();
    let writer = plate.field(row, column, field, spec)?;
    progress.add_total(s.planes());
    let mut reader = img.plane_reader(0, 32 << 20)?;
    let mut buf = vec![0u8; reader.plane_bytes()];
    for (t, c, z) in plane_order(s) {
        reader.read_plane(t, c, z, &mut buf)?;
        writer.write_plane(t, c, z, &buf)?;
        progress.advance(1);
    }
    Ok(())
}
