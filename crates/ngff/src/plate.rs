//! Reading HCS plates: rows, columns, wells, fields and acquisitions.
//!
//! [`PlateReader::open`] checks the whole plate before anything is staged:
//! every well listed in `plate.wells` must exist with `well` metadata and
//! every field listed there must be an image group. Missing pieces are
//! reported together, by path, so one look tells what an export lost.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{NgffError, Result};
use crate::image::{ImageReader, store_stem};
use crate::meta::{self, AcquisitionMeta, PlateMeta, WellMeta};
use crate::node::{NgffVersion, Node, NodeKind, ZarrFormat};

/// One field (image) of a well.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldRef {
    /// Row name (`A`).
    pub row: String,
    /// Column name (`1`).
    pub column: String,
    /// Row index in the plate.
    pub row_index: usize,
    /// Column index in the plate.
    pub column_index: usize,
    /// Field path within the well (`0`).
    pub field: String,
    /// Acquisition id, if the plate has acquisitions.
    pub acquisition: Option<i64>,
    /// The field's image group.
    pub dir: PathBuf,
}

impl FieldRef {
    /// `A1` — the well name as people write it.
    pub fn well_name(&self) -> String {
        format!("{}{}", self.row, self.column)
    }
}

/// An HCS plate, checked.
#[derive(Debug, Clone)]
pub struct PlateReader {
    /// The plate group.
    pub root: PathBuf,
    /// Zarr format.
    pub format: ZarrFormat,
    /// NGFF version.
    pub version: NgffVersion,
    /// Plate name.
    pub name: String,
    /// The plate metadata as read.
    pub meta: PlateMeta,
    /// All fields, well by well (in the plate's well order).
    pub fields: Vec<FieldRef>,
}

impl PlateReader {
    /// Opens and checks a plate.
    pub fn open(path: &Path) -> Result<Self> {
        let node = Node::open(path)?;
        if node.kind() != NodeKind::Plate {
            return Err(NgffError::metadata(
                path,
                "not an HCS plate (no `plate` metadata)",
            ));
        }
        let meta: PlateMeta = meta::get(&node.ome, "plate")
            .map_err(|m| NgffError::metadata(path, m))?
            .ok_or_else(|| NgffError::metadata(path, "no `plate` metadata"))?;
        let mut missing = Vec::new();
        let mut fields = Vec::new();
        for w in &meta.wells {
            let parts: Vec<&str> = w.path.split('/').collect();
            let [row, column] = parts.as_slice() else {
                return Err(NgffError::Plate {
                    path: path.to_path_buf(),
                    message: format!("well path `{}` is not <row>/<column>", w.path),
                });
            };
            if [row, column]
                .iter()
                .any(|s| s.is_empty() || **s == ".." || **s == ".")
            {
                return Err(NgffError::Plate {
                    path: path.to_path_buf(),
                    message: format!("well path `{}` is not a plain <row>/<column>", w.path),
                });
            }
            let row_index = w
                .row_index
                .or_else(|| meta.rows.iter().position(|r| r.name == *row))
                .ok_or_else(|| NgffError::Plate {
                    path: path.to_path_buf(),
                    message: format!(
                        "well `{}` names row `{row}`, which is not in `rows`",
                        w.path
                    ),
                })?;
            let column_index = w
                .column_index
                .or_else(|| meta.columns.iter().position(|c| c.name == *column))
                .ok_or_else(|| NgffError::Plate {
                    path: path.to_path_buf(),
                    message: format!(
                        "well `{}` names column `{column}`, which is not in `columns`",
                        w.path
                    ),
                })?;
            let well_dir = path.join(row).join(column);
            let Ok(well_node) = Node::open(&well_dir) else {
                missing.push(format!("well {}", w.path));
                continue;
            };
            let wm: WellMeta = match meta::get(&well_node.ome, "well") {
                Ok(Some(wm)) => wm,
                Ok(None) => {
                    missing.push(format!("well metadata of {}", w.path));
                    continue;
                }
                Err(m) => return Err(NgffError::metadata(&well_dir, m)),
            };
            for img in &wm.images {
                if img.path.contains('/') || img.path == ".." || img.path.is_empty() {
                    return Err(NgffError::metadata(
                        &well_dir,
                        format!("field path `{}` is not a plain name", img.path),
                    ));
                }
                let dir = well_dir.join(&img.path);
                let is_image =
                    Node::open(&dir).is_ok_and(|n| matches!(n.kind(), NodeKind::Image { .. }));
                if !is_image {
                    missing.push(format!("field {}/{}", w.path, img.path));
                    continue;
                }
                fields.push(FieldRef {
                    row: (*row).to_owned(),
                    column: (*column).to_owned(),
                    row_index,
                    column_index,
                    field: img.path.clone(),
                    acquisition: img.acquisition,
                    dir,
                });
            }
        }
        if !missing.is_empty() {
            return Err(NgffError::Plate {
                path: path.to_path_buf(),
                message: format!(
                    "the plate lists {} that {} not on disk: {}; the export is incomplete",
                    if missing.len() == 1 {
                        "a well or field"
                    } else {
                        "wells or fields"
                    },
                    if missing.len() == 1 { "is" } else { "are" },
                    missing.join(", ")
                ),
            });
        }
        Ok(PlateReader {
            name: meta
                .name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| store_stem(path)),
            root: path.to_path_buf(),
            format: node.format,
            version: node.ngff_version(),
            meta,
            fields,
        })
    }

    /// The plate's acquisitions.
    pub fn acquisitions(&self) -> &[AcquisitionMeta] {
        self.meta.acquisitions.as_deref().unwrap_or(&[])
    }

    /// Row names.
    pub fn rows(&self) -> Vec<String> {
        self.meta.rows.iter().map(|r| r.name.clone()).collect()
    }

    /// Column names.
    pub fn columns(&self) -> Vec<String> {
        self.meta.columns.iter().map(|c| c.name.clone()).collect()
    }

    /// Opens the image of a field.
    pub fn open_field(&self, f: &FieldRef) -> Result<ImageReader> {
        ImageReader::open(&f.dir)
    }
}
