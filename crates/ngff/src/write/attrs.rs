//! NGFF attributes we write: built as JSON, validated with `ome_zarr_metadata`
//! (strict) before anything reaches the disk, and stored as Zarr v2 group
//! metadata (`.zgroup` + `.zattrs`, NGFF 0.4) or v3 (`zarr.json` with the
//! attributes under `ome`, NGFF 0.5).

use std::path::Path;

use serde_json::{Map, Value, json};
use validatrix::Validate;

use crate::error::{NgffError, Result};
use crate::node::NgffVersion;

/// A channel of an image.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelSpec {
    /// Channel name.
    pub label: String,
    /// Colour, `RRGGBB`.
    pub color: String,
    /// Display window (start, end) within the type's range.
    pub window: Option<(f64, f64)>,
}

/// Default channel colours: blue, green, red, magenta, cyan, yellow, grey.
pub const DEFAULT_COLORS: [&str; 7] = [
    "0000FF", "00FF00", "FF0000", "FF00FF", "00FFFF", "FFFF00", "FFFFFF",
];

impl ChannelSpec {
    /// `count` channels named after `labels` (`C<i>` where a name is missing), in the
    /// default colours, without a display window.
    pub fn defaults(count: u64, labels: &[String]) -> Vec<ChannelSpec> {
        ChannelSpec::described(count, labels, &[], &[])
    }

    /// `count` channels as a source describes them: names, colours (`RRGGBB`; another
    /// spelling, or none, gives the default colour) and display windows, each where given.
    pub fn described(
        count: u64,
        labels: &[String],
        colors: &[Option<String>],
        windows: &[Option<(f64, f64)>],
    ) -> Vec<ChannelSpec> {
        (0..usize::try_from(count).unwrap_or(0))
            .map(|i| ChannelSpec {
                label: labels
                    .get(i)
                    .filter(|l| !l.is_empty())
                    .cloned()
                    .unwrap_or_else(|| format!("C{i}")),
                color: colors
                    .get(i)
                    .and_then(Option::as_deref)
                    .map(|c| c.trim_start_matches('#').to_ascii_uppercase())
                    .filter(|c| c.len() == 6 && c.chars().all(|ch| ch.is_ascii_hexdigit()))
                    .unwrap_or_else(|| DEFAULT_COLORS[i % DEFAULT_COLORS.len()].to_owned()),
                window: windows
                    .get(i)
                    .copied()
                    .flatten()
                    .filter(|(a, b)| a.is_finite() && b.is_finite()),
            })
            .collect()
    }
}

/// The `multiscales` (+ `omero`) attributes of a 5D TCZYX image.
pub fn image_attrs(
    name: &str,
    level_paths: &[String],
    level_scales: &[[f64; 5]],
    channels: &[ChannelSpec],
    dtype_range: (f64, f64),
    version: NgffVersion,
    method: &str,
) -> Map<String, Value> {
    let axes = json!([
        {"name": "t", "type": "time", "unit": "second"},
        {"name": "c", "type": "channel"},
        {"name": "z", "type": "space", "unit": "micrometer"},
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]);
    let datasets: Vec<Value> = level_paths
        .iter()
        .zip(level_scales)
        .map(|(p, s)| json!({"path": p, "coordinateTransformations": [{"type": "scale", "scale": s}]}))
        .collect();
    let mut ms = json!({
        "name": name,
        "axes": axes,
        "datasets": datasets,
        "type": method,
    });
    if version == NgffVersion::V04 {
        ms["version"] = json!("0.4");
    }
    let mut out = Map::new();
    out.insert("multiscales".into(), json!([ms]));
    if !channels.is_empty() {
        let chans: Vec<Value> = channels
            .iter()
            .map(|c| {
                let (start, end) = c.window.unwrap_or(dtype_range);
                json!({
                    "label": c.label,
                    "color": c.color,
                    "active": true,
                    "window": {"min": dtype_range.0, "max": dtype_range.1, "start": start, "end": end},
                })
            })
            .collect();
        out.insert(
            "omero".into(),
            json!({"name": name, "channels": chans, "rdefs": {"model": "color"}}),
        );
    }
    out
}

/// `image-label` for a label image: colours (always with `rgba`) and the source image.
pub fn image_label_attrs(colors: &[(u32, [u8; 4])], version: NgffVersion) -> Value {
    let colors: Vec<Value> = colors
        .iter()
        .map(|(v, rgba)| json!({"label-value": v, "rgba": rgba}))
        .collect();
    let mut l = json!({"colors": colors, "source": {"image": "../../"}});
    if version == NgffVersion::V04 {
        l["version"] = json!("0.4");
    }
    l
}

/// A plate acquisition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcquisitionSpec {
    /// Identifier.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Largest number of fields per well in this acquisition.
    pub max_fields: u32,
}

/// The `plate` attribute.
pub fn plate_attrs(
    name: &str,
    rows: &[String],
    columns: &[String],
    wells: &[(usize, usize)],
    acquisitions: &[AcquisitionSpec],
    field_count: u32,
    version: NgffVersion,
) -> Value {
    let wells: Vec<Value> = wells
        .iter()
        .map(|(r, c)| json!({"path": format!("{}/{}", rows[*r], columns[*c]), "rowIndex": r, "columnIndex": c}))
        .collect();
    let mut p = json!({
        "name": name,
        "rows": rows.iter().map(|r| json!({"name": r})).collect::<Vec<_>>(),
        "columns": columns.iter().map(|c| json!({"name": c})).collect::<Vec<_>>(),
        "wells": wells,
        "field_count": field_count,
    });
    if !acquisitions.is_empty() {
        p["acquisitions"] = acquisitions
            .iter()
            .map(|a| json!({"id": a.id, "name": a.name, "maximumfieldcount": a.max_fields}))
            .collect();
    }
    if version == NgffVersion::V04 {
        p["version"] = json!("0.4");
    }
    p
}

/// The `well` attribute: field paths and their acquisitions.
pub fn well_attrs(fields: &[(String, Option<i64>)], version: NgffVersion) -> Value {
    let images: Vec<Value> = fields
        .iter()
        .map(|(p, a)| match a {
            Some(a) => json!({"path": p, "acquisition": a}),
            None => json!({"path": p}),
        })
        .collect();
    let mut w = json!({"images": images});
    if version == NgffVersion::V04 {
        w["version"] = json!("0.4");
    }
    w
}

/// Checks attributes against the strict NGFF model of `version`.
pub fn validate(attrs: &Map<String, Value>, version: NgffVersion, path: &Path) -> Result<()> {
    let err = |m: String| {
        NgffError::write(
            path,
            format!("NGFF {version} metadata would be invalid: {m}"),
        )
    };
    match version {
        NgffVersion::V04 => {
            let a: ome_zarr_metadata::v0_4::OmeNgffGroupAttributes =
                serde_json::from_value(Value::Object(attrs.clone()))
                    .map_err(|e| err(e.to_string()))?;
            a.validate().map_err(|e| err(e.to_string()))
        }
        NgffVersion::V05 => {
            let mut with_version = attrs.clone();
            with_version.insert("version".into(), json!("0.5"));
            let a: ome_zarr_metadata::v0_5::OmeFields =
                serde_json::from_value(Value::Object(with_version))
                    .map_err(|e| err(e.to_string()))?;
            a.validate().map_err(|e| err(e.to_string()))
        }
    }
}

/// Writes group metadata with OME attributes (validated unless `attrs` is empty).
pub fn write_group(dir: &Path, attrs: &Map<String, Value>, version: NgffVersion) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| NgffError::io(dir, e))?;
    if !attrs.is_empty() && !attrs.contains_key("labels") {
        validate(attrs, version, dir)?;
    }
    let write = |name: &str, v: &Value| -> Result<()> {
        let p = dir.join(name);
        let bytes = serde_json::to_vec_pretty(v).map_err(|e| NgffError::write(&p, e))?;
        std::fs::write(&p, bytes).map_err(|e| NgffError::io(&p, e))
    };
    match version {
        NgffVersion::V04 => {
            write(".zgroup", &json!({"zarr_format": 2}))?;
            if !attrs.is_empty() {
                write(".zattrs", &Value::Object(attrs.clone()))?;
            }
            Ok(())
        }
        NgffVersion::V05 => {
            let mut attributes = Map::new();
            if !attrs.is_empty() {
                let mut ome = Map::new();
                ome.insert("version".into(), json!("0.5"));
                ome.extend(attrs.clone());
                attributes.insert("ome".into(), Value::Object(ome));
            }
            write(
                "zarr.json",
                &json!({"zarr_format": 3, "node_type": "group", "attributes": attributes}),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_plate_well_and_label_attrs_validate_in_both_versions() {
        for v in [NgffVersion::V04, NgffVersion::V05] {
            let mut a = image_attrs(
                "img",
                &["0".into(), "1".into()],
                &[[1.0, 1.0, 0.5, 0.2, 0.2], [1.0, 1.0, 0.5, 0.4, 0.4]],
                &[ChannelSpec {
                    label: "DAPI".into(),
                    color: "0000FF".into(),
                    window: None,
                }],
                (0.0, 65535.0),
                v,
                "nearest",
            );
            validate(&a, v, Path::new("img")).unwrap();
            a.insert(
                "image-label".into(),
                image_label_attrs(&[(1, [255, 0, 0, 255])], v),
            );
            validate(&a, v, Path::new("img")).unwrap();
            let mut p = Map::new();
            p.insert(
                "plate".into(),
                plate_attrs(
                    "p",
                    &["A".into()],
                    &["1".into(), "2".into()],
                    &[(0, 0), (0, 1)],
                    &[AcquisitionSpec {
                        id: 0,
                        name: "a".into(),
                        max_fields: 2,
                    }],
                    2,
                    v,
                ),
            );
            validate(&p, v, Path::new("p")).unwrap();
            let mut w = Map::new();
            w.insert("well".into(), well_attrs(&[("0".into(), Some(0))], v));
            validate(&w, v, Path::new("w")).unwrap();
        }
    }

    #[test]
    fn invalid_metadata_is_refused_before_writing() {
        let mut a = Map::new();
        a.insert(
            "multiscales".into(),
            json!([{"version": "0.4", "axes": [{"name": "x", "type": "space"}], "datasets": []}]),
        );
        let d = tempfile::tempdir().unwrap();
        let e = write_group(d.path(), &a, NgffVersion::V04).unwrap_err();
        assert!(e.to_string().contains("invalid"), "{e}");
        assert!(!d.path().join(".zattrs").exists());
    }
}
