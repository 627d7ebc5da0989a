//! OME-Zarr metadata as real writers write it: lenient types for reading.
//!
//! `ome_zarr_metadata` is strict (it rejects the inner `version` keys that
//! ome-zarr-py and omero-cli-zarr write into 0.5 plates, wells and image-labels,
//! and label colours without `rgba`), which is right for what we write and
//! wrong for what we must read. These types accept every field real writers
//! produce, ignore what they do not know, and leave validation of meaning to
//! the readers ([`crate::image`], [`crate::plate`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One axis; NGFF 0.3 wrote bare names.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum AxisMeta {
    /// `{"name": "x", "type": "space", "unit": "micrometer"}`.
    Full {
        /// Axis name.
        name: String,
        /// `time`, `channel`, `space`, or custom.
        #[serde(rename = "type", default)]
        kind: Option<String>,
        /// Unit, if any.
        #[serde(default)]
        unit: Option<String>,
    },
    /// `"x"`.
    Name(String),
}

impl AxisMeta {
    /// The axis name.
    pub fn name(&self) -> &str {
        match self {
            AxisMeta::Full { name, .. } | AxisMeta::Name(name) => name,
        }
    }

    /// The axis type, if given.
    pub fn kind(&self) -> Option<&str> {
        match self {
            AxisMeta::Full { kind, .. } => kind.as_deref(),
            AxisMeta::Name(_) => None,
        }
    }

    /// The unit, if given.
    pub fn unit(&self) -> Option<&str> {
        match self {
            AxisMeta::Full { unit, .. } => unit.as_deref(),
            AxisMeta::Name(_) => None,
        }
    }
}

/// A coordinate transformation.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TransformMeta {
    /// Per-axis scale.
    Scale {
        /// Factors, one per axis.
        #[serde(default)]
        scale: Option<Vec<f64>>,
        /// A path to the factors (not supported for staging; kept).
        #[serde(default)]
        path: Option<String>,
    },
    /// Per-axis offset.
    Translation {
        /// Offsets, one per axis.
        #[serde(default)]
        translation: Option<Vec<f64>>,
        /// A path to the offsets.
        #[serde(default)]
        path: Option<String>,
    },
    /// No transformation.
    Identity,
}

/// One resolution level.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct DatasetMeta {
    /// The array path, relative to the image group (`0`, `s0`, …).
    pub path: String,
    /// Transformations of this level.
    #[serde(default, rename = "coordinateTransformations")]
    pub transforms: Vec<TransformMeta>,
}

/// A `multiscales` entry.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct MultiscaleMeta {
    /// NGFF version (0.4 and earlier; absent in 0.5).
    #[serde(default)]
    pub version: Option<String>,
    /// Image name.
    #[serde(default)]
    pub name: Option<String>,
    /// Axes (absent before 0.3).
    #[serde(default)]
    pub axes: Vec<AxisMeta>,
    /// Resolution levels, highest first.
    pub datasets: Vec<DatasetMeta>,
    /// Transformations applied to all levels.
    #[serde(default, rename = "coordinateTransformations")]
    pub transforms: Vec<TransformMeta>,
    /// Downsampling method.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// The display window of a channel.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
pub struct WindowMeta {
    /// Lowest possible value.
    #[serde(default)]
    pub min: Option<f64>,
    /// Highest possible value.
    #[serde(default)]
    pub max: Option<f64>,
    /// Display start.
    #[serde(default)]
    pub start: Option<f64>,
    /// Display end.
    #[serde(default)]
    pub end: Option<f64>,
}

/// An `omero.channels` entry.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
pub struct OmeroChannelMeta {
    /// Channel name.
    #[serde(default)]
    pub label: Option<String>,
    /// Hex colour, `RRGGBB`.
    #[serde(default)]
    pub color: Option<String>,
    /// Display window.
    #[serde(default)]
    pub window: Option<WindowMeta>,
    /// Whether shown.
    #[serde(default)]
    pub active: Option<bool>,
}

/// The transitional `omero` block.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
pub struct OmeroMeta {
    /// Channels.
    #[serde(default)]
    pub channels: Vec<OmeroChannelMeta>,
    /// Image name.
    #[serde(default)]
    pub name: Option<String>,
}

/// A plate row or column.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct NameMeta {
    /// `A`, `1`, …
    pub name: String,
}

/// A well of a plate.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PlateWellMeta {
    /// `A/1`.
    pub path: String,
    /// Index into `rows` (0.4+).
    #[serde(default, rename = "rowIndex")]
    pub row_index: Option<usize>,
    /// Index into `columns` (0.4+).
    #[serde(default, rename = "columnIndex")]
    pub column_index: Option<usize>,
}

/// A plate acquisition.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct AcquisitionMeta {
    /// Identifier, referenced by well images.
    pub id: i64,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Largest number of fields in a well for this acquisition.
    #[serde(default)]
    pub maximumfieldcount: Option<u32>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Start time (epoch).
    #[serde(default)]
    pub starttime: Option<i64>,
    /// End time (epoch).
    #[serde(default)]
    pub endtime: Option<i64>,
}

/// `plate` metadata.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PlateMeta {
    /// Version (0.4; ignored in 0.5 where writers still add it).
    #[serde(default)]
    pub version: Option<String>,
    /// Plate name.
    #[serde(default)]
    pub name: Option<String>,
    /// Rows.
    pub rows: Vec<NameMeta>,
    /// Columns.
    pub columns: Vec<NameMeta>,
    /// Wells.
    pub wells: Vec<PlateWellMeta>,
    /// Acquisitions.
    #[serde(default)]
    pub acquisitions: Option<Vec<AcquisitionMeta>>,
    /// Largest number of fields per well.
    #[serde(default)]
    pub field_count: Option<u32>,
}

/// A field of a well.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct WellImageMeta {
    /// Image path within the well (`0`).
    pub path: String,
    /// Acquisition id.
    #[serde(default)]
    pub acquisition: Option<i64>,
}

/// `well` metadata.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct WellMeta {
    /// Version (ignored).
    #[serde(default)]
    pub version: Option<String>,
    /// Fields.
    pub images: Vec<WellImageMeta>,
}

/// A label colour.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct LabelColorMeta {
    /// The label value.
    #[serde(rename = "label-value")]
    pub label_value: f64,
    /// RGBA (optional in the spec, required by ome_zarr_metadata).
    #[serde(default)]
    pub rgba: Option<Vec<u8>>,
}

/// `image-label` metadata.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
pub struct ImageLabelMeta {
    /// Version (ignored).
    #[serde(default)]
    pub version: Option<String>,
    /// Colours.
    #[serde(default)]
    pub colors: Option<Vec<LabelColorMeta>>,
    /// Per-label properties.
    #[serde(default)]
    pub properties: Option<Vec<Value>>,
    /// The source image, relative.
    #[serde(default)]
    pub source: Option<Value>,
}

/// Deserialises `key` of `attrs` leniently, naming the key on error.
pub fn get<T: serde::de::DeserializeOwned>(
    attrs: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<T>, String> {
    match attrs.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| format!("`{key}`: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn real_writers_metadata_is_accepted() {
        // ome-zarr-py 0.5 writes an inner version and colours without rgba
        let attrs = json!({
            "plate": {"version": "0.5", "name": "p", "rows": [{"name": "A"}], "columns": [{"name": "1"}],
                      "wells": [{"path": "A/1", "rowIndex": 0, "columnIndex": 0}], "field_count": 2},
            "image-label": {"version": "0.5", "colors": [{"label-value": 1}], "source": {"image": "../../"}},
            "multiscales": [{"axes": ["y", "x"], "datasets": [{"path": "0"}]}]
        });
        let m = attrs.as_object().unwrap();
        let p: PlateMeta = get(m, "plate").unwrap().unwrap();
        assert_eq!(p.wells[0].path, "A/1");
        let l: ImageLabelMeta = get(m, "image-label").unwrap().unwrap();
        assert_eq!(l.colors.unwrap()[0].rgba, None);
        let ms: Vec<MultiscaleMeta> = get(m, "multiscales").unwrap().unwrap();
        assert_eq!(ms[0].axes[1].name(), "x");
        assert!(get::<PlateMeta>(m, "well").unwrap().is_none());
        let bad = json!({"plate": {"rows": 3}});
        assert!(
            get::<PlateMeta>(bad.as_object().unwrap(), "plate")
                .unwrap_err()
                .contains("`plate`")
        );
    }
}
