//! The staging plan: what will be staged, from where, under which names —
//! decided before any pixel moves, stored with the submission, and executed by
//! [`crate::stage`].
//!
//! A plan is plain data (JSON): the stage step of a restarted daemon executes
//! exactly the plan that was recorded, whatever changed in OMERO since.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use stage_ngff::{PixelType, Sizes};

/// The plan format version.
pub const PLAN_VERSION: u32 = 1;

/// What an output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputFormat {
    /// One TIFF per image (TZCYX pages, OME-XML).
    Tiff,
    /// One OME-Zarr per image.
    Zarr,
    /// One HCS OME-Zarr per plate.
    ZarrPlate,
}

impl std::fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OutputFormat::Tiff => "tiff",
            OutputFormat::Zarr => "zarr",
            OutputFormat::ZarrPlate => "zarr-plate",
        })
    }
}

/// Pixel metadata of an OMERO image, as OMERO's JSON API reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OmeroPixels {
    /// TCZYX sizes.
    pub sizes: Sizes,
    /// Pixel type.
    pub dtype: PixelType,
    /// Physical pixel size z, y, x in micrometres.
    pub physical_zyx_um: [Option<f64>; 3],
    /// Channel names (may be fewer than channels).
    pub channels: Vec<String>,
    /// Channel colours (`RRGGBB`) from OMERO's rendering settings, where known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub colors: Vec<Option<String>>,
    /// Display windows (start, end) from OMERO's rendering settings, where known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<Option<(f64, f64)>>,
}

/// Where one image's pixels come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PixelSource {
    /// An OME-Zarr image group on disk (an image, a bioformats2raw series or a plate field).
    Zarr {
        /// The image group.
        path: PathBuf,
    },
    /// A TIFF or OME-TIFF file on disk (an OMERO image's original file: one series of it,
    /// possibly spread over the files of a multi-file fileset).
    Tiff {
        /// The file (the one holding the OME-XML for a fileset).
        path: PathBuf,
        /// The series (OME-XML image) of the file.
        #[serde(default, skip_serializing_if = "is_zero")]
        series: usize,
        /// Every file of its fileset, checked to lie in the data roots and the group's folder
        /// (empty: just `path`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        files: Vec<PathBuf>,
        /// For an OMERO image: how OMERO describes and renders it (channel names, colours
        /// and windows given to what is written from the file).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        omero: Option<OmeroPixels>,
    },
    /// Tiles from omero-ms-pixel-buffer.
    OmeroTiles {
        /// OMERO image id.
        image: i64,
        /// Its pixels.
        pixels: OmeroPixels,
    },
    /// OMERO's own exporter (`omero zarr export`, the configured command), run at staging
    /// into an OME-Zarr that is then read like any other.
    Export {
        /// OMERO image id.
        image: i64,
        /// Its pixels, as OMERO describes them (the export must match).
        pixels: OmeroPixels,
    },
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl PixelSource {
    /// The source's name, as `plan` shows it.
    pub fn kind(&self) -> &'static str {
        match self {
            PixelSource::Zarr { .. } => "zarr",
            PixelSource::Tiff { .. } => "tiff-file",
            PixelSource::OmeroTiles { .. } => "pixel-service",
            PixelSource::Export { .. } => "omero-export",
        }
    }
}

/// Where an output came from, for matching results back to inputs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// OMERO image id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<i64>,
    /// OMERO dataset id the image was selected through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_id: Option<i64>,
    /// OMERO plate id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plate_id: Option<i64>,
    /// OMERO screen id the plate was selected through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen_id: Option<i64>,
    /// Plate name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plate: Option<String>,
    /// Well (`A1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub well: Option<String>,
    /// Field path within the well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Plate acquisition id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquisition: Option<i64>,
    /// The path on the shared storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

/// One image to stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedImage {
    /// Output name in `data/in` (`<name>.tif` or `<name>.zarr`).
    pub output: String,
    /// TIFF or Zarr.
    pub format: OutputFormat,
    /// The image's name.
    pub name: String,
    /// Its pixels.
    pub source: PixelSource,
    /// Where it came from.
    pub origin: Origin,
    /// Pixel bytes (full resolution).
    pub bytes: u64,
    /// For an OMERO image: why each source before the one used did not apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passed_over: Vec<String>,
    /// Why the output is not named exactly as BIOMERO names it from the image's name
    /// (a name taken already, or unsafe as a file name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renamed: Option<String>,
}

/// A plate acquisition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedAcquisition {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Most fields per well.
    pub max_fields: u32,
}

/// One field of a well assembled from OMERO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedField {
    /// Field path within the well (`0`, `1`, …).
    pub path: String,
    /// Acquisition id.
    pub acquisition: Option<i64>,
    /// OMERO image id.
    pub image_id: i64,
    /// Image name.
    pub name: String,
    /// Its pixels.
    pub source: PixelSource,
    /// Why each source before the one used did not apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passed_over: Vec<String>,
}

/// One well assembled from OMERO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedWell {
    /// Row index.
    pub row: usize,
    /// Column index.
    pub column: usize,
    /// Fields.
    pub fields: Vec<PlannedField>,
}

/// Where a plate comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PlateSource {
    /// An HCS plate store on disk, passed through (labels included).
    Zarr {
        /// The store.
        path: PathBuf,
    },
    /// Assembled well by well from OMERO.
    Omero {
        /// Row names.
        rows: Vec<String>,
        /// Column names.
        columns: Vec<String>,
        /// Acquisitions.
        acquisitions: Vec<PlannedAcquisition>,
        /// Wells with fields.
        wells: Vec<PlannedWell>,
    },
}

/// One plate to stage as one HCS OME-Zarr.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedPlate {
    /// Output name in `data/in` (`<plate>.zarr`).
    pub output: String,
    /// Plate name.
    pub name: String,
    /// Its data.
    pub source: PlateSource,
    /// Where it came from.
    pub origin: Origin,
    /// Pixel bytes (full resolution, all fields).
    pub bytes: u64,
    /// Wells.
    pub wells: usize,
    /// Fields.
    pub fields: usize,
}

/// The staging plan of one submission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// [`PLAN_VERSION`].
    pub version: u32,
    /// NGFF version of staged OME-Zarr.
    pub ngff_version: String,
    /// Images (TIFF or OME-Zarr each).
    pub images: Vec<PlannedImage>,
    /// Plates (one HCS OME-Zarr each).
    pub plates: Vec<PlannedPlate>,
    /// Pixel bytes of everything.
    pub bytes: u64,
    /// Things a person should know (a Zarr outside the roots fetched over HTTP instead, …).
    #[serde(default)]
    pub notes: Vec<String>,
}

impl Plan {
    /// Pixel bytes staging writes (full resolution, uncompressed): every TIFF, every image or
    /// plate assembled from OMERO or converted from a TIFF. Zarr stores passed through are
    /// linked or copied as they are stored, and not counted.
    pub fn written_bytes(&self) -> u64 {
        let images = self
            .images
            .iter()
            .filter(|i| {
                !(i.format == OutputFormat::Zarr && matches!(i.source, PixelSource::Zarr { .. }))
            })
            .map(|i| i.bytes);
        let plates = self
            .plates
            .iter()
            .filter(|p| !matches!(p.source, PlateSource::Zarr { .. }))
            .map(|p| p.bytes);
        images.chain(plates).fold(0, u64::saturating_add)
    }

    /// Output names, in plan order.
    pub fn outputs(&self) -> impl Iterator<Item = &str> {
        self.images
            .iter()
            .map(|i| i.output.as_str())
            .chain(self.plates.iter().map(|p| p.output.as_str()))
    }
}
