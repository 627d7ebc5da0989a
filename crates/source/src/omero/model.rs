//! The JSON shapes of OMERO's API (omero-marshal), read into plain structs.
//!
//! Objects carry `@id`, `@type`, `Name` and `omero:details` (owner, group);
//! images carry `Pixels` (`SizeX`…`SizeT`, `Type.value`, `PhysicalSizeX`
//! with `Value` and `Unit`, and `Channels` when loaded alone); wells carry
//! 0-based `Row`/`Column` and `WellSamples` with `Image` and
//! `PlateAcquisition`. An image whose pixels already live in a Zarr says so in
//! its `ExternalInfo` (entity type `com.glencoesoftware.ngff:multiscales`,
//! `lsid` = the path).

use serde_json::Value;
use stage_ngff::{PixelType, Sizes};

use crate::plan::OmeroPixels;

/// The ExternalInfo entity type of images whose pixels are an OME-Zarr.
pub const NGFF_ENTITY_TYPE: &str = "com.glencoesoftware.ngff:multiscales";

/// An OMERO image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInfo {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Group name (`omero:details.group.Name`).
    pub group: Option<String>,
    /// Pixels, when loaded.
    pub pixels: Option<OmeroPixels>,
    /// The Zarr path from ExternalInfo, if any.
    pub zarr_path: Option<String>,
    /// Its fileset's files in OMERO's managed repository (`webgateway/original_file_paths/`
    /// joined to `managed_repository`), when looked up.
    pub original_files: Vec<std::path::PathBuf>,
    /// Which series of its fileset it is (`omero:series`), when OMERO says.
    pub series: Option<u32>,
}

/// A plate acquisition (run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcquisitionInfo {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Most fields per well.
    pub max_fields: u32,
}

/// One field of a well.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleInfo {
    /// The image.
    pub image: ImageInfo,
    /// Its acquisition.
    pub acquisition: Option<i64>,
}

/// A well.
#[derive(Debug, Clone, PartialEq)]
pub struct WellInfo {
    /// Id.
    pub id: i64,
    /// 0-based row.
    pub row: usize,
    /// 0-based column.
    pub column: usize,
    /// Fields.
    pub samples: Vec<SampleInfo>,
}

/// A plate.
#[derive(Debug, Clone, PartialEq)]
pub struct PlateInfo {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Rows, when OMERO reports them.
    pub rows: Option<usize>,
    /// Columns, when OMERO reports them.
    pub columns: Option<usize>,
    /// `letter` or `number`.
    pub row_naming: String,
    /// `letter` or `number`.
    pub column_naming: String,
    /// Group name.
    pub group: Option<String>,
}

/// `@id` of an object.
pub fn id(v: &Value) -> Option<i64> {
    v.get("@id").and_then(Value::as_i64)
}

/// `Name` of an object (empty when absent).
pub fn name(v: &Value) -> String {
    v.get("Name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The object's group name.
pub fn group(v: &Value) -> Option<String> {
    v.pointer("/omero:details/group/Name")
        .and_then(Value::as_str)
        .map(ToOwned::to_owned)
}

fn length_um(v: Option<&Value>) -> Option<f64> {
    let v = v?;
    let value = v.get("Value")?.as_f64()?;
    let factor = match v
        .get("Unit")
        .and_then(Value::as_str)
        .unwrap_or("MICROMETER")
    {
        "MICROMETER" => 1.0,
        "NANOMETER" => 1e-3,
        "ANGSTROM" => 1e-4,
        "PICOMETER" => 1e-6,
        "MILLIMETER" => 1e3,
        "CENTIMETER" => 1e4,
        "METER" => 1e6,
        _ => return None,
    };
    Some(value * factor).filter(|v| v.is_finite() && *v > 0.0)
}

/// Reads `Pixels`.
pub fn pixels(v: &Value) -> Result<OmeroPixels, String> {
    let size = |k: &str| {
        v.get(k)
            .and_then(Value::as_u64)
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("Pixels.{k} is missing or not a positive number"))
    };
    let sizes = Sizes {
        t: size("SizeT")?,
        c: size("SizeC")?,
        z: size("SizeZ")?,
        y: size("SizeY")?,
        x: size("SizeX")?,
    };
    let type_name = v
        .pointer("/Type/value")
        .and_then(Value::as_str)
        .ok_or("Pixels.Type.value is missing")?;
    let dtype = PixelType::parse(type_name).ok_or_else(|| {
        format!("pixel type `{type_name}` cannot be staged (bit images are not supported)")
    })?;
    let listed = v
        .get("Channels")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let channels = listed
        .iter()
        .enumerate()
        .map(|(i, c)| {
            c.get("Name")
                .and_then(Value::as_str)
                .map_or_else(|| format!("C{i}"), ToOwned::to_owned)
        })
        .collect();
    // the acquisition colour (omero-marshal's signed RGBA `Color`); rendering settings,
    // when read, take its place
    let colors: Vec<Option<String>> = listed
        .iter()
        .map(|c| {
            c.get("Color")
                .and_then(Value::as_i64)
                .and_then(|v| i32::try_from(v).ok())
                .map(stage_ngff::tiff::ome_xml::color_hex)
        })
        .collect();
    Ok(OmeroPixels {
        sizes,
        dtype,
        physical_zyx_um: [
            length_um(v.get("PhysicalSizeZ")),
            length_um(v.get("PhysicalSizeY")),
            length_um(v.get("PhysicalSizeX")),
        ],
        channels,
        colors: if colors.iter().any(Option::is_some) {
            colors
        } else {
            Vec::new()
        },
        windows: Vec::new(),
    })
}

/// The Zarr path an image's ExternalInfo points at (in `omero:details` or on the image).
pub fn external_zarr(v: &Value) -> Option<String> {
    let info = v
        .pointer("/omero:details/externalInfo")
        .or_else(|| v.get("ExternalInfo"))?;
    let field = |a: &str, b: &str| {
        info.get(a)
            .or_else(|| info.get(b))
            .and_then(Value::as_str)
            .map(ToOwned::to_owned)
    };
    let entity = field("EntityType", "entityType")?;
    let lsid = field("Lsid", "lsid")?;
    (entity == NGFF_ENTITY_TYPE).then(|| lsid.strip_prefix("file://").unwrap_or(&lsid).to_owned())
}

/// Reads an image.
pub fn image(v: &Value) -> Result<ImageInfo, String> {
    let id = id(v).ok_or("an image without @id")?;
    let pixels = match v.get("Pixels") {
        Some(p) => Some(pixels(p).map_err(|e| format!("Image {id}: {e}"))?),
        None => None,
    };
    Ok(ImageInfo {
        id,
        name: name(v),
        group: group(v),
        pixels,
        zarr_path: external_zarr(v),
        original_files: Vec::new(),
        series: v
            .get("omero:series")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok()),
    })
}

/// An image's rendering settings as OMERO.web's `webgateway/imgData/<id>/` answers
/// (`channelMarshal` in `omeroweb/webgateway/marshal.py`): per channel its label, colour
/// (`RRGGBB`) and display window `{min, max, start, end}`. `None` when the answer has no
/// channels (OMERO could not prepare a rendering engine).
pub fn rendering(v: &Value) -> Option<Rendering> {
    let chans = v.get("channels")?.as_array()?;
    if chans.is_empty() {
        return None;
    }
    Some(Rendering {
        labels: chans
            .iter()
            .map(|c| {
                c.get("label")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect(),
        colors: chans
            .iter()
            .map(|c| {
                c.get("color")
                    .and_then(Value::as_str)
                    .map(|h| h.trim_start_matches('#').to_ascii_uppercase())
            })
            .collect(),
        windows: chans
            .iter()
            .map(|c| {
                let w = c.get("window")?;
                Some((w.get("start")?.as_f64()?, w.get("end")?.as_f64()?))
            })
            .collect(),
    })
}

/// How OMERO renders an image's channels.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rendering {
    /// Channel labels.
    pub labels: Vec<String>,
    /// Colours, `RRGGBB`.
    pub colors: Vec<Option<String>>,
    /// Display windows (start, end).
    pub windows: Vec<Option<(f64, f64)>>,
}

impl Rendering {
    /// Puts these settings on `px`: colours and windows; labels only where `px` has none.
    pub fn apply(&self, px: &mut OmeroPixels) {
        px.colors.clone_from(&self.colors);
        px.windows.clone_from(&self.windows);
        if px.channels.is_empty() {
            px.channels.clone_from(&self.labels);
        }
    }
}

/// Reads a well.
pub fn well(v: &Value) -> Result<WellInfo, String> {
    let id = id(v).ok_or("a well without @id")?;
    let idx = |k: &str| {
        v.get(k)
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| format!("Well {id}: `{k}` is missing"))
    };
    let samples = v
        .get("WellSamples")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let img = s
                .get("Image")
                .ok_or_else(|| format!("Well {id}: a WellSample without Image"))?;
            Ok(SampleInfo {
                image: image(img)?,
                acquisition: s.get("PlateAcquisition").and_then(self::id),
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(WellInfo {
        id,
        row: idx("Row")?,
        column: idx("Column")?,
        samples,
    })
}

/// Reads a plate.
pub fn plate(v: &Value) -> Result<PlateInfo, String> {
    let count = |k: &str| {
        v.get(k)
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
    };
    let naming = |k: &str, default: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_ascii_lowercase()
    };
    Ok(PlateInfo {
        id: id(v).ok_or("a plate without @id")?,
        name: name(v),
        rows: count("Rows"),
        columns: count("Columns"),
        row_naming: naming("RowNamingConvention", "letter"),
        column_naming: naming("ColumnNamingConvention", "number"),
        group: group(v),
    })
}

/// Reads a plate acquisition.
pub fn acquisition(v: &Value) -> Result<AcquisitionInfo, String> {
    let id = id(v).ok_or("a plate acquisition without @id")?;
    let n = name(v);
    Ok(AcquisitionInfo {
        id,
        name: if n.is_empty() { format!("Run {id}") } else { n },
        max_fields: v
            .get("MaximumFieldCount")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
    })
}

/// The name of row or column `i` (0-based) under a naming convention: `letter` → A…Z, AA…; `number` → 1, 2, …
pub fn index_name(i: usize, naming: &str) -> String {
    if naming == "letter" {
        let mut n = i + 1;
        let mut s = Vec::new();
        while n > 0 {
            let r = (n - 1) % 26;
            s.push(b'A' + u8::try_from(r).unwrap_or(0));
            n = (n - 1) / 26;
        }
        s.reverse();
        String::from_utf8(s).unwrap_or_default()
    } else {
        (i + 1).to_string()
    }
}

/// `Filepath` of a `biomero.import` map annotation in a `webclient/api/annotations/` answer, by image id.
pub fn import_filepaths(v: &Value) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    for a in v
        .get("annotations")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        if a.get("ns").and_then(Value::as_str) != Some("biomero.import") {
            continue;
        }
        let Some(image) = a.pointer("/link/parent/id").and_then(Value::as_i64) else {
            continue;
        };
        for kv in a
            .get("values")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if let [k, v] = kv.as_array().map(Vec::as_slice).unwrap_or_default()
                && k.as_str() == Some("Filepath")
                && let Some(p) = v.as_str()
            {
                out.push((image, p.to_owned()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documented_shapes_are_read() {
        let img = json!({
            "@id": 16783, "Name": "CFP_AurB_R3D.dv",
            "omero:details": {"group": {"@id": 5, "Name": "read-ann"}},
            "Pixels": {"SizeX": 512, "SizeY": 256, "SizeZ": 29, "SizeC": 2, "SizeT": 1,
                "PhysicalSizeX": {"Value": 0.12698, "Unit": "MICROMETER"},
                "PhysicalSizeZ": {"Value": 200.0, "Unit": "NANOMETER"},
                "Type": {"value": "uint16"},
                "Channels": [{"Name": "CFP_JP4"}, {"Color": 1}]}
        });
        let i = image(&img).unwrap();
        assert_eq!(i.group.as_deref(), Some("read-ann"));
        let p = i.pixels.unwrap();
        assert_eq!((p.sizes.x, p.sizes.y, p.sizes.z), (512, 256, 29));
        assert_eq!(p.dtype, PixelType::Uint16);
        assert_eq!(p.physical_zyx_um, [Some(0.2), None, Some(0.12698)]);
        assert_eq!(p.channels, ["CFP_JP4", "C1"]);
        assert_eq!(index_name(0, "letter"), "A");
        assert_eq!(index_name(26, "letter"), "AA");
        assert_eq!(index_name(11, "number"), "12");
        let z = json!({"@id": 1, "omero:details": {"externalInfo": {"EntityType": NGFF_ENTITY_TYPE, "Lsid": "/data/a.zarr/0"}}});
        assert_eq!(external_zarr(&z).as_deref(), Some("/data/a.zarr/0"));
        let bad = json!({"@id": 2, "Pixels": {"SizeX": 1, "SizeY": 1, "SizeZ": 1, "SizeC": 1, "SizeT": 1, "Type": {"value": "bit"}}});
        assert!(image(&bad).unwrap_err().contains("bit"));
    }
}
