//! Writing HCS plates (plate → row → column → field) and label images.
//!
//! [`PlateWriter::create`] writes the plate, row and well groups with their
//! metadata (acquisitions, field paths); each field is then an ordinary
//! [`ImageWriter`] at `<row>/<column>/<field>`, and label images go under the
//! field's `labels/` group, listed there and pointing back at their source.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::error::{NgffError, Result};
use crate::node::NgffVersion;
use crate::write::attrs::{self, AcquisitionSpec};
use crate::write::image::{ImageSpec, ImageWriter};

/// One well and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WellSpec {
    /// Index into the plate's rows.
    pub row: usize,
    /// Index into the plate's columns.
    pub column: usize,
    /// Field paths (`0`, `1`, …) and their acquisition ids.
    pub fields: Vec<(String, Option<i64>)>,
}

/// Everything needed to create a plate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlateSpec {
    /// Plate name.
    pub name: String,
    /// Row names (`A`, `B`, …).
    pub rows: Vec<String>,
    /// Column names (`1`, `2`, …).
    pub columns: Vec<String>,
    /// Wells present.
    pub wells: Vec<WellSpec>,
    /// Acquisitions.
    pub acquisitions: Vec<AcquisitionSpec>,
    /// NGFF version.
    pub version: NgffVersion,
}

/// A plate being written.
#[derive(Debug)]
pub struct PlateWriter {
    dir: PathBuf,
    spec: PlateSpec,
}

fn safe(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\'])
}

impl PlateWriter {
    /// Writes the plate, row and well groups under `dir`.
    pub fn create(dir: &Path, spec: PlateSpec) -> Result<Self> {
        for n in spec.rows.iter().chain(&spec.columns) {
            if !safe(n) {
                return Err(NgffError::write(
                    dir,
                    format!("row/column name `{n}` cannot be a path segment"),
                ));
            }
        }
        let wells: Vec<(usize, usize)> = spec.wells.iter().map(|w| (w.row, w.column)).collect();
        for (r, c) in &wells {
            if *r >= spec.rows.len() || *c >= spec.columns.len() {
                return Err(NgffError::write(
                    dir,
                    format!("well ({r}, {c}) is outside the plate"),
                ));
            }
        }
        let field_count = spec
            .wells
            .iter()
            .map(|w| u32::try_from(w.fields.len()).unwrap_or(u32::MAX))
            .max()
            .unwrap_or(0);
        let mut plate = Map::new();
        plate.insert(
            "plate".into(),
            attrs::plate_attrs(
                &spec.name,
                &spec.rows,
                &spec.columns,
                &wells,
                &spec.acquisitions,
                field_count,
                spec.version,
            ),
        );
        attrs::write_group(dir, &plate, spec.version)?;
        for row in &spec.rows {
            attrs::write_group(&dir.join(row), &Map::new(), spec.version)?;
        }
        for w in &spec.wells {
            for (f, _) in &w.fields {
                if !safe(f) {
                    return Err(NgffError::write(
                        dir,
                        format!("field path `{f}` cannot be a path segment"),
                    ));
                }
            }
            let mut well = Map::new();
            well.insert("well".into(), attrs::well_attrs(&w.fields, spec.version));
            attrs::write_group(
                &dir.join(&spec.rows[w.row]).join(&spec.columns[w.column]),
                &well,
                spec.version,
            )?;
        }
        Ok(PlateWriter {
            dir: dir.to_path_buf(),
            spec,
        })
    }

    /// The plate directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory of a field.
    pub fn field_dir(&self, row: usize, column: usize, field: &str) -> PathBuf {
        self.dir
            .join(&self.spec.rows[row])
            .join(&self.spec.columns[column])
            .join(field)
    }

    /// Starts writing the image of a field.
    pub fn field(
        &self,
        row: usize,
        column: usize,
        field: &str,
        spec: ImageSpec,
    ) -> Result<ImageWriter> {
        if !self
            .spec
            .wells
            .iter()
            .any(|w| w.row == row && w.column == column && w.fields.iter().any(|(f, _)| f == field))
        {
            return Err(NgffError::write(
                &self.dir,
                format!("field {row}/{column}/{field} is not in the plate"),
            ));
        }
        ImageWriter::create(&self.field_dir(row, column, field), spec)
    }
}

/// Starts writing label image `name` of the image at `image_dir` and lists it in `labels/`.
pub fn label_image(image_dir: &Path, name: &str, spec: ImageSpec) -> Result<ImageWriter> {
    if !safe(name) {
        return Err(NgffError::write(
            image_dir,
            format!("label name `{name}` cannot be a path segment"),
        ));
    }
    if spec.label_colors.is_none() {
        return Err(NgffError::write(
            image_dir,
            "a label image needs label colours (image-label)",
        ));
    }
    let labels_dir = image_dir.join("labels");
    let mut names: Vec<String> = match crate::node::Node::open(&labels_dir) {
        Ok(node) => crate::meta::get::<Vec<String>>(&node.ome, "labels")
            .map_err(|m| NgffError::metadata(&labels_dir, m))?
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    if !names.iter().any(|n| n == name) {
        names.push(name.to_owned());
    }
    let mut group = Map::new();
    group.insert("labels".into(), json!(names));
    write_labels_group(&labels_dir, &group, spec.version)?;
    ImageWriter::create(&labels_dir.join(name), spec)
}

fn write_labels_group(dir: &Path, group: &Map<String, Value>, version: NgffVersion) -> Result<()> {
    // remove the previous metadata so that the format does not mix
    for f in [".zgroup", ".zattrs", "zarr.json"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    attrs::write_group(dir, group, version)
}
