//! From a selection and a workflow's input modes to a [`Plan`].
//!
//! Inputs are resolved first (paths on the shared storage, OMERO objects),
//! every one checked — a refusal names the input and stops planning before
//! anything is staged — then each image or plate gets its output format from
//! the workflow's modes (docs/contracts.md#input-modes): images become TIFFs or OME-Zarr images;
//! plates become one HCS OME-Zarr for plate workflows or are flattened to one
//! TIFF per field (`<plate>_<well>_<field>.tif`) for TIFF workflows. Output
//! names are filesystem-safe and unique in the folder.

use std::path::{Path, PathBuf};

use stage_config::ModeDecision;
use stage_config::mode::InputMode;
use stage_ngff::names::UniqueNames;
use stage_ngff::{ImageReader, Node, NodeKind, PlateReader};

use crate::error::{Result, SourceError};
use crate::fs::{FsInput, FsSource};
use crate::omero::model::{self, ImageInfo};
use crate::omero::{OmeroSource, Unit};
use crate::plan::{
    Origin, OutputFormat, PLAN_VERSION, PixelSource, Plan, PlannedAcquisition, PlannedField,
    PlannedImage, PlannedPlate, PlannedWell, PlateSource,
};

/// One selected input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputRef {
    /// An OMERO object.
    Omero {
        /// `Image`, `Dataset`, `Well`, `Plate` or `Screen`.
        kind: String,
        /// Its id.
        id: i64,
    },
    /// A path on the shared storage.
    Path(String),
}

/// What to plan.
#[derive(Debug, Clone)]
pub struct Request {
    /// The selection.
    pub inputs: Vec<InputRef>,
    /// The submission's OMERO group name.
    pub group: String,
    /// The workflow's modes.
    pub modes: ModeDecision,
    /// NGFF version of staged OME-Zarr (`0.4` or `0.5`).
    pub ngff_version: String,
}

/// The sources a plan may read from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The shared storage.
    pub fs: FsSource,
    /// OMERO, when configured.
    pub omero: Option<OmeroSource>,
    /// OMERO's exporter (`omero_export_command`) is configured: the last source of an OMERO
    /// image's pixels.
    pub exporter: bool,
}

/// An image found, before its output format is chosen.
#[derive(Debug, Clone)]
struct FoundImage {
    input: String,
    name: String,
    source: PixelSource,
    origin: Origin,
    bytes: u64,
    /// An OMERO image: its output is named as BIOMERO names its export (the name kept).
    omero: bool,
    passed_over: Vec<String>,
}

/// A plate found.
#[derive(Debug, Clone)]
struct FoundPlate {
    input: String,
    name: String,
    source: PlateSource,
    origin: Origin,
    /// Every field as an image (for TIFF workflows).
    fields: Vec<FoundImage>,
    bytes: u64,
    wells: usize,
    /// An OMERO plate: its output is named as BIOMERO names its export.
    omero: bool,
}

#[derive(Debug, Clone)]
enum Found {
    Image(FoundImage),
    Plate(FoundPlate),
}

fn zarr_image(input: &str, path: &Path, name: String, origin: Origin) -> Result<FoundImage> {
    let data = |source| SourceError::Data {
        input: input.to_owned(),
        source: Box::new(source),
    };
    let img = ImageReader::open(path).map_err(data)?;
    // its label images travel with it (Zarr modes) or are read for it: they must match it
    img.checked_labels().map_err(data)?;
    Ok(FoundImage {
        input: input.to_owned(),
        name,
        bytes: img.plane_bytes() * img.sizes().planes(),
        source: PixelSource::Zarr {
            path: path.to_path_buf(),
        },
        origin,
        omero: false,
        passed_over: Vec::new(),
    })
}

fn zarr_plate(input: &str, path: &Path, mut origin: Origin) -> Result<FoundPlate> {
    let data = |source| SourceError::Data {
        input: input.to_owned(),
        source: Box::new(source),
    };
    let plate = PlateReader::open(path).map_err(data)?;
    let name = if plate.name.is_empty() {
        stage_ngff::image::store_stem(path)
    } else {
        plate.name.clone()
    };
    origin.plate = Some(name.clone());
    let mut fields = Vec::new();
    for f in &plate.fields {
        fields.push(zarr_image(
            input,
            &f.dir,
            format!("{name}_{}_{}", f.well_name(), f.field),
            Origin {
                plate: Some(name.clone()),
                well: Some(f.well_name()),
                field: Some(f.field.clone()),
                acquisition: f.acquisition,
                path: Some(f.dir.clone()),
                ..origin.clone()
            },
        )?);
    }
    let wells = plate.meta.wells.len();
    Ok(FoundPlate {
        input: input.to_owned(),
        bytes: fields.iter().map(|f| f.bytes).sum(),
        name,
        source: PlateSource::Zarr {
            path: path.to_path_buf(),
        },
        origin,
        fields,
        wells,
        omero: false,
    })
}

/// Resolves one path (blocking: reads metadata).
fn resolve_path(fs: &FsSource, raw: &str, group: &str) -> Result<Vec<Found>> {
    let path = fs.confine(raw, group)?;
    let origin = Origin {
        path: Some(path.clone()),
        ..Origin::default()
    };
    Ok(match fs.classify(raw, &path)? {
        FsInput::Image(p) => vec![Found::Image(zarr_image(
            raw,
            &p,
            stage_ngff::image::store_stem(&p),
            origin,
        )?)],
        FsInput::Series { store, series } => {
            let stem = stage_ngff::image::store_stem(&store);
            series
                .iter()
                .map(|s| {
                    let name = if series.len() == 1 {
                        stem.clone()
                    } else {
                        format!("{stem}_{s}")
                    };
                    let p = store.join(s);
                    zarr_image(
                        raw,
                        &p,
                        name,
                        Origin {
                            path: Some(p.clone()),
                            ..Origin::default()
                        },
                    )
                    .map(Found::Image)
                })
                .collect::<Result<_>>()?
        }
        FsInput::Tiff(p) => {
            let info = stage_ngff::tiff::read::inspect(&p).map_err(|source| SourceError::Data {
                input: raw.to_owned(),
                source: Box::new(source),
            })?;
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .map(|n| {
                    for ext in [".ome.tiff", ".ome.tif", ".tiff", ".tif", ".TIF", ".TIFF"] {
                        if let Some(s) = n.strip_suffix(ext) {
                            return s.to_owned();
                        }
                    }
                    n
                })
                .unwrap_or_default();
            vec![Found::Image(FoundImage {
                input: raw.to_owned(),
                name,
                bytes: info.sizes.planes() * info.sizes.y * info.sizes.x * info.dtype.size() as u64,
                source: PixelSource::Tiff {
                    path: p,
                    series: 0,
                    files: Vec::new(),
                    omero: None,
                },
                origin,
                omero: false,
                passed_over: Vec::new(),
            })]
        }
        FsInput::Plate(p) => vec![Found::Plate(zarr_plate(raw, &p, origin)?)],
    })
}

/// The on-disk image group an OMERO image's Zarr path names, when it is usable.
fn usable_zarr(fs: &FsSource, raw: &str) -> std::result::Result<PathBuf, String> {
    let p = fs.within_roots(raw).map_err(|e| e.to_string())?;
    let node = Node::open(&p).map_err(|e| e.to_string())?;
    match node.kind() {
        NodeKind::Image { label: false } => Ok(p),
        NodeKind::Bioformats2Raw => {
            let s = stage_ngff::image::bioformats2raw_series(&p).map_err(|e| e.to_string())?;
            match s.as_slice() {
                [one] => Ok(p.join(one)),
                _ => Err(format!(
                    "{raw} holds {} series; OMERO did not say which",
                    s.len()
                )),
            }
        }
        other => Err(format!("{raw} is a {other:?}, not an image")),
    }
}

/// What this site can fall back to for an OMERO image's pixels, after its Zarr and its
/// original files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fallbacks {
    /// `managed_repository` is set: original files can be looked up.
    pub managed_repository: bool,
    /// `pixel_buffer_url` is set.
    pub pixel_service: bool,
    /// `omero_export_command` is set.
    pub exporter: bool,
}

/// Why an OMERO image's original files are not used.
enum NotOriginal {
    /// Not files biomero-stage reads (a vendor format, a fileset without OME-XML, a series
    /// OMERO did not name): the next source is tried.
    Unread(String),
    /// Refused: outside the data roots or the group's folder, missing or cut short, or not
    /// the image OMERO describes.
    Refused(SourceError),
}

fn is_tiff_name(p: &Path) -> bool {
    stage_ngff::tiff::read::is_tiff_path(p)
}

fn is_companion(p: &Path) -> bool {
    p.to_string_lossy()
        .to_ascii_lowercase()
        .ends_with(".companion.ome")
}

/// The original files of OMERO image `info` on the shared storage, when they are a TIFF,
/// BigTIFF, OME-TIFF (one series of it, possibly spread over a multi-file fileset) or an
/// ImageJ / tifffile TIFF, and hold exactly the pixels OMERO describes.
fn original_tiff(fs: &FsSource, info: &ImageInfo) -> std::result::Result<PixelSource, NotOriginal> {
    let input = format!("Image {}", info.id);
    let files = &info.original_files;
    if let Some(other) = files.iter().find(|f| !is_tiff_name(f) && !is_companion(f)) {
        return Err(NotOriginal::Unread(format!(
            "its fileset holds {}, a format not read natively (only TIFF, BigTIFF and OME-TIFF filesets are)",
            other.file_name().map_or_else(
                || other.display().to_string(),
                |n| n.to_string_lossy().into_owned()
            )
        )));
    }
    // the managed repository links an in-place import to the file on the storage: followed,
    // and every target must lie in the data roots and the group's folder
    let confine = |file: &PathBuf| -> std::result::Result<PathBuf, NotOriginal> {
        let raw = file.to_string_lossy().into_owned();
        match &info.group {
            Some(g) => fs.confine(&raw, g),
            None => fs.within_roots(&raw),
        }
        .map_err(|e| {
            let target = std::fs::canonicalize(file).map_or_else(
                |_| String::new(),
                |t| format!(" (it links to {})", t.display()),
            );
            NotOriginal::Refused(SourceError::refused(
                &input,
                format!("its original file {}{target}: {e}", file.display()),
            ))
        })
    };
    let confined: Vec<PathBuf> = files
        .iter()
        .map(confine)
        .collect::<std::result::Result<_, _>>()?;
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let allowed: Vec<PathBuf> = confined.iter().map(|p| canonical(p)).collect();
    let series = info.series.map_or(0, |s| s as usize);
    let data = |source| {
        NotOriginal::Refused(SourceError::Data {
            input: input.clone(),
            source: Box::new(source),
        })
    };
    // the file that describes the image: the first TIFF of the fileset with OME-XML (or a
    // pointer to its companion), else the only TIFF
    let tiffs: Vec<&PathBuf> = confined.iter().filter(|p| is_tiff_name(p)).collect();
    let mut chosen = None;
    for t in &tiffs {
        let tiff = stage_ngff::tiff::read::inspect_series(t, series).map_err(data)?;
        if tiff.source == "ome-xml" || tiffs.len() == 1 {
            chosen = Some(tiff);
            break;
        }
    }
    let Some(tiff) = chosen else {
        return Err(NotOriginal::Unread(format!(
            "its fileset has {} TIFF files without OME-XML saying how they form the image",
            tiffs.len()
        )));
    };
    if info.series.is_none() && tiff.series_count > 1 {
        return Err(NotOriginal::Unread(format!(
            "{} holds {} series and OMERO did not say which one this image is",
            tiff.path.display(),
            tiff.series_count
        )));
    }
    if let Some(stray) = tiff.files.iter().find(|f| !allowed.contains(&canonical(f))) {
        return Err(NotOriginal::Refused(SourceError::refused(
            &input,
            format!(
                "its OME-XML names {}, which is not a file of its fileset in OMERO; it is not used",
                stray.display()
            ),
        )));
    }
    if let Some(px) = &info.pixels
        && (px.sizes != tiff.sizes || px.dtype != tiff.dtype)
    {
        return Err(NotOriginal::Refused(SourceError::refused(
            &input,
            format!(
                "series {series} of its original file {} holds {} {} pixels, but OMERO describes {} {}: it is not used, and no guess is made",
                tiff.path.display(),
                tiff.sizes,
                tiff.dtype,
                px.sizes,
                px.dtype
            ),
        )));
    }
    Ok(PixelSource::Tiff {
        files: if tiff.files.len() == 1 && tiff.files[0] == tiff.path {
            Vec::new()
        } else {
            tiff.files.clone()
        },
        path: tiff.path,
        series,
        omero: info.pixels.clone(),
    })
}

fn pixel_bytes(px: &crate::plan::OmeroPixels) -> u64 {
    px.sizes.planes() * px.sizes.y * px.sizes.x * px.dtype.size() as u64
}

/// The pixel source of an OMERO image, the first that applies of: its OME-Zarr on the
/// storage (ExternalInfo / `biomero.import`), its original files (TIFF family), the pixel
/// service, OMERO's exporter; with why each earlier one did not apply.
fn omero_pixels(
    fs: &FsSource,
    fallbacks: Fallbacks,
    info: &ImageInfo,
) -> Result<(PixelSource, u64, Vec<String>)> {
    let mut passed_over = Vec::new();
    let input = format!("Image {}", info.id);
    match &info.zarr_path {
        Some(raw) => match usable_zarr(fs, raw) {
            Ok(path) => {
                let data = |source| SourceError::Data {
                    input: input.clone(),
                    source: Box::new(source),
                };
                let img = ImageReader::open(&path).map_err(data)?;
                img.checked_labels().map_err(data)?;
                let bytes = img.plane_bytes() * img.sizes().planes();
                return Ok((PixelSource::Zarr { path }, bytes, passed_over));
            }
            Err(why) => {
                passed_over.push(format!("zarr: its Zarr cannot be read from here ({why})"));
            }
        },
        None => passed_over.push(
            "zarr: OMERO knows no OME-Zarr for it (no ExternalInfo, no biomero.import Filepath)"
                .into(),
        ),
    }
    let px = info.pixels.clone().ok_or_else(|| SourceError::Protocol {
        url: input.clone(),
        reason: "no Pixels in OMERO's answer".into(),
    })?;
    let bytes = pixel_bytes(&px);
    if !fallbacks.managed_repository {
        passed_over.push(
            "tiff-file: managed_repository is not set, so original files cannot be found".into(),
        );
    } else if info.original_files.is_empty() {
        passed_over.push("tiff-file: OMERO lists no original files for it".into());
    } else {
        match original_tiff(fs, info) {
            Ok(source) => return Ok((source, bytes, passed_over)),
            Err(NotOriginal::Refused(e)) => return Err(e),
            Err(NotOriginal::Unread(why)) => passed_over.push(format!("tiff-file: {why}")),
        }
    }
    if fallbacks.pixel_service {
        return Ok((
            PixelSource::OmeroTiles {
                image: info.id,
                pixels: px,
            },
            bytes,
            passed_over,
        ));
    }
    passed_over.push("pixel-service: pixel_buffer_url is not set".into());
    if fallbacks.exporter {
        return Ok((
            PixelSource::Export {
                image: info.id,
                pixels: px,
            },
            bytes,
            passed_over,
        ));
    }
    passed_over.push("omero-export: omero_export_command is not set".into());
    Err(SourceError::NotConfigured(format!(
        "{input} cannot be staged: {}; set pixel_buffer_url (omero-ms-pixel-buffer) or omero_export_command (omero-cli-zarr) in biomero-stage.toml",
        passed_over.join("; ")
    )))
}

fn found_omero(fs: &FsSource, fallbacks: Fallbacks, unit: Unit) -> Result<Found> {
    match unit {
        Unit::Image { info, origin } => {
            let (source, bytes, passed_over) = omero_pixels(fs, fallbacks, &info)?;
            Ok(Found::Image(FoundImage {
                input: format!("Image {}", info.id),
                name: info.name.clone(),
                source,
                origin,
                bytes,
                omero: true,
                passed_over,
            }))
        }
        Unit::Plate {
            plate,
            acquisitions,
            wells,
            origin,
        } => {
            let input = format!("Plate {}", plate.id);
            let name = if plate.name.is_empty() {
                format!("plate_{}", plate.id)
            } else {
                plate.name.clone()
            };
            let nrows = plate
                .rows
                .unwrap_or(0)
                .max(wells.iter().map(|w| w.row + 1).max().unwrap_or(0));
            let ncols = plate
                .columns
                .unwrap_or(0)
                .max(wells.iter().map(|w| w.column + 1).max().unwrap_or(0));
            let rows: Vec<String> = (0..nrows)
                .map(|i| model::index_name(i, &plate.row_naming))
                .collect();
            let columns: Vec<String> = (0..ncols)
                .map(|i| model::index_name(i, &plate.column_naming))
                .collect();
            let mut planned_wells = Vec::new();
            let mut fields = Vec::new();
            for w in &wells {
                let well_name = format!("{}{}", rows[w.row], columns[w.column]);
                let mut pf = Vec::new();
                for (i, s) in w.samples.iter().enumerate() {
                    let (source, bytes, passed_over) = omero_pixels(fs, fallbacks, &s.image)?;
                    let field = i.to_string();
                    // a field staged on its own is named as BIOMERO names the image's export
                    fields.push(FoundImage {
                        input: input.clone(),
                        name: s.image.name.clone(),
                        source: source.clone(),
                        origin: Origin {
                            image_id: Some(s.image.id),
                            well: Some(well_name.clone()),
                            field: Some(field.clone()),
                            acquisition: s.acquisition,
                            plate: Some(name.clone()),
                            ..origin.clone()
                        },
                        bytes,
                        omero: true,
                        passed_over: passed_over.clone(),
                    });
                    pf.push(PlannedField {
                        path: field,
                        acquisition: s.acquisition,
                        image_id: s.image.id,
                        name: s.image.name.clone(),
                        source,
                        passed_over,
                    });
                }
                planned_wells.push(PlannedWell {
                    row: w.row,
                    column: w.column,
                    fields: pf,
                });
            }
            if fields.is_empty() {
                return Err(SourceError::Empty(format!(
                    "{input} ({name}) has no fields with images"
                )));
            }
            let source = match whole_store(&planned_wells, &rows, &columns, fields.len()) {
                Some(path) => PlateSource::Zarr { path },
                None => PlateSource::Omero {
                    rows,
                    columns,
                    acquisitions: acquisitions
                        .iter()
                        .map(|a| PlannedAcquisition {
                            id: a.id,
                            name: a.name.clone(),
                            max_fields: a.max_fields,
                        })
                        .collect(),
                    wells: planned_wells,
                },
            };
            Ok(Found::Plate(FoundPlate {
                input,
                bytes: fields.iter().map(|f| f.bytes).sum(),
                name,
                source,
                origin,
                wells: wells.len(),
                fields,
                omero: true,
            }))
        }
    }
}

/// The plate store on disk that holds exactly these fields at `<row>/<column>/<field>`, if there is one.
fn whole_store(
    wells: &[PlannedWell],
    rows: &[String],
    columns: &[String],
    field_count: usize,
) -> Option<PathBuf> {
    let mut store: Option<PathBuf> = None;
    for w in wells {
        for f in &w.fields {
            let PixelSource::Zarr { path } = &f.source else {
                return None;
            };
            let tail: Vec<String> = path
                .iter()
                .rev()
                .take(3)
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            if tail
                != [
                    f.path.clone(),
                    columns[w.column].clone(),
                    rows[w.row].clone(),
                ]
            {
                return None;
            }
            let root = path.parent()?.parent()?.parent()?.to_path_buf();
            match &store {
                Some(s) if *s != root => return None,
                _ => store = Some(root),
            }
        }
    }
    let store = store?;
    let plate = PlateReader::open(&store).ok()?;
    (plate.fields.len() == field_count).then_some(store)
}

/// Plans `req`: resolves and checks every input, then chooses formats and names.
pub async fn plan(req: &Request, sources: &Sources) -> Result<Plan> {
    if req.inputs.is_empty() {
        return Err(SourceError::Empty(
            "the selection is empty; select images, datasets, plates or screens".into(),
        ));
    }
    let mut found = Vec::new();
    let mut notes = Vec::new();
    for input in &req.inputs {
        match input {
            InputRef::Path(raw) => {
                let (fs, raw2, group) = (sources.fs.clone(), raw.clone(), req.group.clone());
                let r = tokio::task::spawn_blocking(move || resolve_path(&fs, &raw2, &group))
                    .await
                    .map_err(|e| {
                        SourceError::NotConfigured(format!("planning {raw} failed: {e}"))
                    })??;
                found.extend(r);
            }
            InputRef::Omero { kind, id } => {
                let omero = sources.omero.as_ref().ok_or_else(|| {
                    SourceError::NotConfigured(format!(
                        "{kind} {id} is an OMERO object but OMERO is not configured; set omero_url, omero_user and the password in biomero-stage.toml"
                    ))
                })?;
                let resolved = omero.resolve(kind, *id, &req.group).await?;
                if resolved.units.is_empty() {
                    return Err(SourceError::Empty(format!("{kind} {id} holds no images")));
                }
                notes.extend(resolved.notes);
                let cfg = omero.client().config();
                let fallbacks = Fallbacks {
                    managed_repository: cfg.managed_repository.is_some(),
                    pixel_service: cfg.pixel_buffer_url.is_some(),
                    exporter: sources.exporter,
                };
                let (fs, units) = (sources.fs.clone(), resolved.units);
                let r = tokio::task::spawn_blocking(move || {
                    units
                        .into_iter()
                        .map(|u| found_omero(&fs, fallbacks, u))
                        .collect::<Result<Vec<_>>>()
                })
                .await
                .map_err(|e| {
                    SourceError::NotConfigured(format!("planning {kind} {id} failed: {e}"))
                })??;
                found.extend(r);
            }
        }
    }
    assign(found, req, notes)
}

fn assign(found: Vec<Found>, req: &Request, notes: Vec<String>) -> Result<Plan> {
    let mut names = UniqueNames::new();
    let mut images = Vec::new();
    let mut plates = Vec::new();
    let image_format = |input: &str| {
        match req.modes.image_mode() {
        Some(InputMode::Tiff) => Ok(OutputFormat::Tiff),
        Some(_) => Ok(OutputFormat::Zarr),
        None => Err(SourceError::WrongKind {
            input: input.to_owned(),
            reason: "is an image, but the workflow takes only plates (a Zarr Plate workflow); select plates or screens".into(),
        }),
    }
    };
    let mut push_image = |f: FoundImage, format: OutputFormat, names: &mut UniqueNames| {
        let (output, renamed) = if f.omero {
            // BIOMERO exports `<name>.zarr`; its converter writes `<name>.<first key>.tif`,
            // the first key being `0` in every store omero-cli-zarr writes
            let ext = if format == OutputFormat::Tiff {
                ".0.tif"
            } else {
                ".zarr"
            };
            let fallback = format!("image_{}", f.origin.image_id.unwrap_or_default());
            names.claim_verbatim(&f.name, &fallback, ext)
        } else {
            let ext = if format == OutputFormat::Tiff {
                ".tif"
            } else {
                ".zarr"
            };
            (names.claim(&f.name, ext), None)
        };
        images.push(PlannedImage {
            output,
            format,
            name: f.name,
            source: f.source,
            origin: f.origin,
            bytes: f.bytes,
            passed_over: f.passed_over,
            renamed,
        });
    };
    for f in found {
        match f {
            Found::Image(i) => {
                let format = image_format(&i.input)?;
                push_image(i, format, &mut names);
            }
            Found::Plate(p) => match req.modes.plate_mode() {
                Some(InputMode::ZarrPlate) => plates.push(PlannedPlate {
                    output: if p.omero {
                        let fallback = format!("plate_{}", p.origin.plate_id.unwrap_or_default());
                        names.claim_verbatim(&p.name, &fallback, ".zarr").0
                    } else {
                        names.claim(&p.name, ".zarr")
                    },
                    name: p.name,
                    source: p.source,
                    origin: p.origin,
                    bytes: p.bytes,
                    wells: p.wells,
                    fields: p.fields.len(),
                }),
                Some(_) => {
                    for field in p.fields {
                        push_image(field, OutputFormat::Tiff, &mut names);
                    }
                }
                None => {
                    return Err(SourceError::WrongKind {
                        input: p.input,
                        reason: "is a plate, but the workflow takes images as OME-Zarr (not a plate workflow); select images or datasets, or mark the workflow as dual mode".into(),
                    });
                }
            },
        }
    }
    if images.is_empty() && plates.is_empty() {
        return Err(SourceError::Empty("the selection holds no images".into()));
    }
    let bytes =
        images.iter().map(|i| i.bytes).sum::<u64>() + plates.iter().map(|p| p.bytes).sum::<u64>();
    Ok(Plan {
        version: PLAN_VERSION,
        ngff_version: req.ngff_version.clone(),
        images,
        plates,
        bytes,
        notes,
    })
}
