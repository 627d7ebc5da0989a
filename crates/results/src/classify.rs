//! What a results folder holds: Zarr plates and images, image files and
//! other files (attachments), each matched to the staged input it came from.

use std::path::Path;

use serde::{Deserialize, Serialize};
use stage_ngff::copy::is_zarr_dir;
use stage_ngff::{ImageReader, Node, NodeKind};

use crate::error::{Result, ResultsError};

/// What an item of the results is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItemKind {
    /// An HCS plate (OME-Zarr).
    Plate,
    /// An OME-Zarr image (or a bioformats2raw collection of them).
    ZarrImage,
    /// A TIFF, OME-TIFF or PNG file.
    ImageFile,
    /// Anything else (CSV tables, logs): listed, kept, not imported as images.
    Attachment,
}

/// One item of the results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Path relative to the results folder.
    pub path: String,
    /// What it is.
    pub kind: ItemKind,
    /// The staged input it was made from (its name in `data/in`), when one matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// Label images inside it (paths relative to the results folder).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// NGFF version (Zarr items).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ngff: Option<String>,
}

const IMAGE_SUFFIXES: [&str; 5] = [".ome.tiff", ".ome.tif", ".tiff", ".tif", ".png"];
const STEM_SUFFIXES: [&str; 7] = [
    ".ome.zarr",
    ".zarr",
    ".ome.tiff",
    ".ome.tif",
    ".tiff",
    ".tif",
    ".png",
];

/// A name without its image suffix (`a.ome.zarr` → `a`).
pub fn stem(name: &str) -> &str {
    let lower = name.to_ascii_lowercase();
    for s in STEM_SUFFIXES {
        if lower.ends_with(s) {
            return &name[..name.len() - s.len()];
        }
    }
    name
}

fn is_image_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    IMAGE_SUFFIXES.iter().any(|s| lower.ends_with(s))
}

/// Lists the items under `root` (Zarr stores are not descended into) and
/// checks every Zarr: plates with the plate reader, images with the image reader.
pub fn classify(root: &Path) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    walk(root, "", &mut items)?;
    items.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(items)
}

fn walk(root: &Path, rel: &str, items: &mut Vec<Item>) -> Result<()> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| ResultsError::io(&dir, e))?
        .filter_map(std::result::Result::ok)
        .collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let full = e.path();
        if full.is_dir() {
            if is_zarr_dir(&full) {
                items.push(zarr_item(&full, path)?);
            } else {
                walk(root, &path, items)?;
            }
        } else {
            items.push(Item {
                kind: if is_image_file(&name) {
                    ItemKind::ImageFile
                } else {
                    ItemKind::Attachment
                },
                path,
                input: None,
                labels: Vec::new(),
                ngff: None,
            });
        }
    }
    Ok(())
}

fn zarr_item(full: &Path, path: String) -> Result<Item> {
    let err = |source| ResultsError::Zarr {
        path: full.to_path_buf(),
        source,
    };
    let node = Node::open(full).map_err(err)?;
    let kind = match node.kind() {
        NodeKind::Plate => {
            stage_ngff::PlateReader::open(full).map_err(err)?;
            ItemKind::Plate
        }
        NodeKind::Image { .. } => {
            ImageReader::open(full).map_err(err)?;
            ItemKind::ZarrImage
        }
        NodeKind::Bioformats2Raw => ItemKind::ZarrImage,
        other => {
            return Err(ResultsError::Zarr {
                path: full.to_path_buf(),
                source: stage_ngff::NgffError::metadata(
                    full,
                    format!("a returned Zarr must be an image or a plate, this is {other:?}"),
                ),
            });
        }
    };
    Ok(Item {
        path,
        kind,
        input: None,
        labels: Vec::new(),
        ngff: Some(node.ngff_version().to_string()),
    })
}

/// Matches image items to the staged inputs (names in `data/in`): the input
/// whose stem is the longest prefix of the item's file name wins; with a
/// single input, every image item came from it.
pub fn match_inputs(items: &mut [Item], inputs: &[String]) {
    for item in items.iter_mut().filter(|i| i.kind != ItemKind::Attachment) {
        let file = item.path.rsplit('/').next().unwrap_or(&item.path);
        let file_stem = stem(file);
        let best = inputs
            .iter()
            .filter(|i| file_stem.starts_with(stem(i)))
            .max_by_key(|i| stem(i).len());
        item.input = best.cloned().or_else(|| match inputs {
            [only] => Some(only.clone()),
            _ => None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_match_by_longest_stem_prefix() {
        let mk = |p: &str, kind| Item {
            path: p.into(),
            kind,
            input: None,
            labels: vec![],
            ngff: None,
        };
        let mut items = vec![
            mk("masks/img_1_cp_masks.tif", ItemKind::ImageFile),
            mk("img_10.ome.zarr", ItemKind::ZarrImage),
            mk("other.png", ItemKind::ImageFile),
            mk("table.csv", ItemKind::Attachment),
        ];
        match_inputs(&mut items, &["img_1.tif".into(), "img_10.tif".into()]);
        let got: Vec<_> = items.iter().map(|i| i.input.as_deref()).collect();
        assert_eq!(got, [Some("img_1.tif"), Some("img_10.tif"), None, None]);
    }
}
