//! A Zarr node on disk: its format (v2 or v3), type, and OME attributes.
//!
//! Zarr v2 keeps metadata in `.zgroup`/`.zarray` and attributes in `.zattrs`;
//! Zarr v3 keeps both in `zarr.json`, with the OME attributes under
//! `attributes.ome` (NGFF 0.5). [`Node::open`] reads whichever is there and
//! hands out the OME attributes the same way for both, so the readers above
//! never care which format they are looking at.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{NgffError, Result};

/// Zarr storage format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ZarrFormat {
    /// Zarr v2 (`.zarray`, `.zgroup`, `.zattrs`).
    #[serde(rename = "2")]
    V2,
    /// Zarr v3 (`zarr.json`).
    #[serde(rename = "3")]
    V3,
}

pub use stage_common::NgffVersion;

/// The Zarr format an NGFF version is stored in.
pub fn zarr_format(v: NgffVersion) -> ZarrFormat {
    match v {
        NgffVersion::V04 => ZarrFormat::V2,
        NgffVersion::V05 => ZarrFormat::V3,
    }
}

/// Group or array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeType {
    /// A group.
    Group,
    /// An array.
    Array,
}

/// A node's metadata.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its directory.
    pub path: PathBuf,
    /// Zarr format.
    pub format: ZarrFormat,
    /// Group or array.
    pub node_type: NodeType,
    /// The OME attributes (`.zattrs` in v2, `attributes.ome` in v3).
    pub ome: Map<String, Value>,
    /// All attributes as stored.
    pub attributes: Map<String, Value>,
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    match stage_common::limits::read_metadata(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| NgffError::metadata(path, format!("not valid JSON: {e}"))),
        Err(e)
            if e.io()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound) =>
        {
            Ok(None)
        }
        Err(e) => Err(NgffError::metadata_read(path, e)),
    }
}

fn as_object(v: Option<Value>, path: &Path) -> Result<Map<String, Value>> {
    match v {
        None => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(NgffError::metadata(
            path,
            "attributes must be a JSON object",
        )),
    }
}

impl Node {
    /// Reads the node at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(NgffError::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
            ));
        }
        if let Some(v3) = read_json(&path.join("zarr.json"))? {
            let node_type = match v3.get("node_type").and_then(Value::as_str) {
                Some("group") => NodeType::Group,
                Some("array") => NodeType::Array,
                other => {
                    return Err(NgffError::metadata(
                        path.join("zarr.json"),
                        format!("node_type is {other:?}, expected \"group\" or \"array\""),
                    ));
                }
            };
            let attributes = as_object(v3.get("attributes").cloned(), &path.join("zarr.json"))?;
            let ome = match attributes.get("ome") {
                Some(Value::Object(o)) => o.clone(),
                // lenient: NGFF keys at the top level of a v3 node
                _ => attributes.clone(),
            };
            return Ok(Node {
                path: path.to_path_buf(),
                format: ZarrFormat::V3,
                node_type,
                ome,
                attributes,
            });
        }
        let zattrs = read_json(&path.join(".zattrs"))?;
        let node_type = if path.join(".zarray").exists() {
            NodeType::Array
        } else if path.join(".zgroup").exists() || zattrs.is_some() {
            NodeType::Group
        } else {
            return Err(NgffError::NotZarr {
                path: path.to_path_buf(),
                hint: "check the path points at the .zarr directory (or a group inside it)".into(),
            });
        };
        let attributes = as_object(zattrs, &path.join(".zattrs"))?;
        Ok(Node {
            path: path.to_path_buf(),
            format: ZarrFormat::V2,
            node_type,
            ome: attributes.clone(),
            attributes,
        })
    }

    /// The NGFF version the node declares (`ome.version` in 0.5, inner `version` keys before).
    pub fn declared_version(&self) -> Option<String> {
        if let Some(v) = self.ome.get("version").and_then(Value::as_str) {
            return Some(v.to_owned());
        }
        for key in ["multiscales", "plate", "well", "image-label"] {
            let v = match self.ome.get(key) {
                Some(Value::Array(a)) => a.first().and_then(|m| m.get("version")),
                Some(o) => o.get("version"),
                None => None,
            };
            if let Some(v) = v.and_then(Value::as_str) {
                return Some(v.to_owned());
            }
        }
        None
    }

    /// The NGFF version for reading: 0.5 for Zarr v3, 0.4 for v2.
    pub fn ngff_version(&self) -> NgffVersion {
        match self.format {
            ZarrFormat::V3 => NgffVersion::V05,
            ZarrFormat::V2 => NgffVersion::V04,
        }
    }

    /// Whether `key` is among the OME attributes.
    pub fn has(&self, key: &str) -> bool {
        self.ome.contains_key(key)
    }
}

/// What a node is, as far as OME-Zarr is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum NodeKind {
    /// A multiscale image (possibly a label image).
    Image {
        /// Whether it is a label image (`image-label`).
        label: bool,
    },
    /// An HCS plate.
    Plate,
    /// A well of a plate.
    Well,
    /// A `labels/` group.
    Labels,
    /// A bioformats2raw layout with numbered series.
    Bioformats2Raw,
    /// A Zarr array.
    Array,
    /// A group with no OME metadata.
    Group,
}

impl std::fmt::Display for NodeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeKind::Image { label: false } => "image",
            NodeKind::Image { label: true } => "label image",
            NodeKind::Plate => "plate",
            NodeKind::Well => "well",
            NodeKind::Labels => "labels group",
            NodeKind::Bioformats2Raw => "bioformats2raw series",
            NodeKind::Array => "array",
            NodeKind::Group => "group without OME metadata",
        })
    }
}

impl Node {
    /// Classifies the node.
    pub fn kind(&self) -> NodeKind {
        if self.node_type == NodeType::Array {
            NodeKind::Array
        } else if self.has("plate") {
            NodeKind::Plate
        } else if self.has("well") {
            NodeKind::Well
        } else if self.has("multiscales") {
            NodeKind::Image {
                label: self.has("image-label"),
            }
        } else if self.has("bioformats2raw.layout") {
            NodeKind::Bioformats2Raw
        } else if self.has("labels") {
            NodeKind::Labels
        } else {
            NodeKind::Group
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_and_v3_nodes_expose_the_same_ome_attributes() {
        let d = tempfile::tempdir().unwrap();
        let v2 = d.path().join("a.zarr");
        std::fs::create_dir(&v2).unwrap();
        std::fs::write(v2.join(".zgroup"), r#"{"zarr_format":2}"#).unwrap();
        std::fs::write(
            v2.join(".zattrs"),
            r#"{"plate":{"version":"0.4","rows":[],"columns":[],"wells":[]}}"#,
        )
        .unwrap();
        let n = Node::open(&v2).unwrap();
        assert_eq!((n.format, n.kind()), (ZarrFormat::V2, NodeKind::Plate));
        assert_eq!(n.declared_version().as_deref(), Some("0.4"));

        let v3 = d.path().join("b.zarr");
        std::fs::create_dir(&v3).unwrap();
        std::fs::write(
            v3.join("zarr.json"),
            r#"{"zarr_format":3,"node_type":"group","attributes":{"ome":{"version":"0.5","multiscales":[{"axes":[],"datasets":[]}],"image-label":{}}}}"#,
        )
        .unwrap();
        let n = Node::open(&v3).unwrap();
        assert_eq!(
            (n.format, n.kind()),
            (ZarrFormat::V3, NodeKind::Image { label: true })
        );
        assert_eq!(n.declared_version().as_deref(), Some("0.5"));

        let e = Node::open(d.path()).unwrap_err();
        assert!(matches!(e, NgffError::NotZarr { .. }), "{e}");
    }
}
