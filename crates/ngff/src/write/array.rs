//! Creating Zarr arrays: metadata for v2 (`.zarray`) and v3 (`zarr.json`,
//! optionally sharded), with zstd or blosc-zstd compression.
//!
//! Metadata is written out exactly as defined here (JSON, parsed by zarrs into
//! its metadata types), so what lands on disk is what OMERO's readers and
//! zarr-python expect: `dimension_separator: "/"` and a blosc compressor for
//! v2 (ome-zarr-py's defaults), `bytes` + a compressor for v3.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zarrs::array::{Array, ArrayMetadata};
use zarrs::filesystem::FilesystemStore;
use zarrs::metadata::v2::ArrayMetadataV2;
use zarrs::metadata::v3::ArrayMetadataV3;

use crate::dtype::PixelType;
use crate::error::{NgffError, Result};
use crate::node::ZarrFormat;

/// Chunk compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "codec", rename_all = "kebab-case")]
pub enum Compression {
    /// No compression.
    None,
    /// zstd at `level`.
    Zstd {
        /// zstd level (1–22).
        level: i32,
    },
    /// Blosc with zstd inside and byte shuffle (ome-zarr-py's codec family).
    BloscZstd {
        /// Compression level (0–9).
        level: u8,
    },
}

impl Default for Compression {
    fn default() -> Self {
        Compression::BloscZstd { level: 1 }
    }
}

/// The layout of one array.
#[derive(Debug, Clone, PartialEq)]
pub struct ArrayLayout {
    /// Shape.
    pub shape: Vec<u64>,
    /// Chunk shape (the inner chunk when sharded).
    pub chunks: Vec<u64>,
    /// Shard shape (v3 only); `None` for no sharding.
    pub shard: Option<Vec<u64>>,
    /// Pixel type.
    pub dtype: PixelType,
    /// Compression.
    pub compression: Compression,
    /// Dimension names (v3).
    pub dimension_names: Vec<String>,
}

fn v2_compressor(c: Compression, dtype: PixelType) -> Value {
    match c {
        Compression::None => Value::Null,
        Compression::Zstd { level } => json!({"id": "zstd", "level": level}),
        Compression::BloscZstd { level } => json!({
            "id": "blosc", "cname": "zstd", "clevel": level, "shuffle": i32::from(dtype.size() > 1), "blocksize": 0
        }),
    }
}

fn v3_codecs(c: Compression, dtype: PixelType) -> Vec<Value> {
    let mut codecs = vec![json!({"name": "bytes", "configuration": {"endian": "little"}})];
    match c {
        Compression::None => {}
        Compression::Zstd { level } => {
            codecs.push(
                json!({"name": "zstd", "configuration": {"level": level, "checksum": false}}),
            );
        }
        Compression::BloscZstd { level } => codecs.push(json!({
            "name": "blosc",
            "configuration": {
                "cname": "zstd", "clevel": level,
                "shuffle": if dtype.size() > 1 { "shuffle" } else { "noshuffle" },
                "typesize": dtype.size(), "blocksize": 0
            }
        })),
    }
    codecs
}

/// The metadata document of an array in `format`.
pub fn array_metadata(layout: &ArrayLayout, format: ZarrFormat) -> Value {
    let fill = layout.dtype.zero();
    match format {
        ZarrFormat::V2 => json!({
            "zarr_format": 2,
            "shape": layout.shape,
            "chunks": layout.chunks,
            "dtype": layout.dtype.v2_dtype(),
            "compressor": v2_compressor(layout.compression, layout.dtype),
            "fill_value": fill,
            "order": "C",
            "filters": null,
            "dimension_separator": "/",
        }),
        ZarrFormat::V3 => {
            let (grid, codecs) = match &layout.shard {
                Some(shard) => (
                    shard.clone(),
                    vec![json!({
                        "name": "sharding_indexed",
                        "configuration": {
                            "chunk_shape": layout.chunks,
                            "codecs": v3_codecs(layout.compression, layout.dtype),
                            "index_codecs": [
                                {"name": "bytes", "configuration": {"endian": "little"}},
                                {"name": "crc32c"}
                            ],
                            "index_location": "end"
                        }
                    })],
                ),
                None => (
                    layout.chunks.clone(),
                    v3_codecs(layout.compression, layout.dtype),
                ),
            };
            json!({
                "zarr_format": 3,
                "node_type": "array",
                "shape": layout.shape,
                "data_type": layout.dtype.name(),
                "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": grid}},
                "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
                "fill_value": fill,
                "codecs": codecs,
                "attributes": {},
                "dimension_names": if layout.dimension_names.is_empty() {
                    Value::Null
                } else {
                    json!(layout.dimension_names)
                },
            })
        }
    }
}

/// Creates an array at `dir` (metadata written; no chunks yet). `dir` is `store_root/path`.
pub fn create_array(
    store_root: &Path,
    path: &str,
    layout: &ArrayLayout,
    format: ZarrFormat,
) -> Result<Array<FilesystemStore>> {
    let dir = store_root.join(path.trim_start_matches('/'));
    let doc = array_metadata(layout, format);
    let metadata: ArrayMetadata = match format {
        ZarrFormat::V2 => serde_json::from_value::<ArrayMetadataV2>(doc)
            .map_err(|e| NgffError::write(&dir, e))?
            .into(),
        ZarrFormat::V3 => serde_json::from_value::<ArrayMetadataV3>(doc)
            .map_err(|e| NgffError::write(&dir, e))?
            .into(),
    };
    let store =
        Arc::new(FilesystemStore::new(store_root).map_err(|e| NgffError::write(store_root, e))?);
    let array = Array::new_with_metadata(
        store,
        &format!("/{}", path.trim_start_matches('/')),
        metadata,
    )
    .map_err(|e| NgffError::write(&dir, e))?;
    array
        .store_metadata()
        .map_err(|e| NgffError::write(&dir, e))?;
    Ok(array)
}

/// Configures zarrs once per process: no `_zarrs` attribute in written metadata,
/// and one thread per chunk codec call — the engine decodes and encodes many
/// chunks in parallel itself, and c-blosc's per-call thread pools on top of
/// that only oversubscribe the cores.
pub fn configure_zarrs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let mut c = zarrs::config::global_config_mut();
        c.set_include_zarrs_metadata(false);
        c.set_codec_concurrent_target(1);
    });
}
