//! Passing an existing OME-Zarr through to staging: verbatim when its
//! version is already the one wanted, re-encoded chunk by chunk otherwise.
//!
//! Verbatim copies hard-link every file (falling back to a copy across
//! filesystems), so staging a 100 GB plate that already sits on the shared
//! storage costs metadata operations only. Re-encoding (NGFF 0.4/Zarr v2 ↔
//! 0.5/Zarr v3) walks the hierarchy, converts the OME attributes (the inner
//! `version` keys of 0.4 ↔ the `ome.version` of 0.5), and copies each array
//! chunk by chunk on all cores, remembering an XXH3-128 hash of every decoded chunk; the
//! result is read back and compared before it is renamed into place.
//!
//! Re-encoding into NGFF 0.5 may shard ([`Sharding::Shards`]): every array is written as
//! Zarr v3 shards of whole chunks, each as large as fits [`SHARD_BYTES`] decoded (all
//! channels and planes of a small field in one file), so a plate of thousands of fields is
//! a few files per field instead of one per chunk. A shard is read from the source as one
//! region, written, and read back and compared like a chunk.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use zarrs::array::{Array, ArrayBytes};
use zarrs::filesystem::FilesystemStore;

use crate::dtype::PixelType;
use crate::error::{NgffError, Result};
use crate::node::{NgffVersion, Node, NodeType, ZarrFormat};
use crate::write::array::{ArrayLayout, Compression, configure_zarrs, create_array};
use crate::write::atomic::StagingDir;
use crate::write::attrs;

/// How a store was staged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CopyMode {
    /// Every file hard-linked.
    Hardlink,
    /// Every file copied (another filesystem).
    Copy,
    /// Some files linked, some copied.
    Mixed,
    /// Re-encoded into the other NGFF version.
    Reencode,
}

/// What a pass-through did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CopyReport {
    /// The staged store.
    pub target: PathBuf,
    /// How.
    pub mode: CopyMode,
    /// Files written or linked.
    pub files: u64,
    /// Bytes of those files (or of decoded chunks when re-encoding).
    pub bytes: u64,
    /// Arrays re-encoded.
    pub arrays: u64,
}

/// The NGFF version of a store (from its Zarr format).
pub fn store_version(path: &Path) -> Result<NgffVersion> {
    Ok(Node::open(path)?.ngff_version())
}

/// The most decoded bytes of one shard when re-encoding with [`Sharding::Shards`].
pub const SHARD_BYTES: u64 = 32 << 20;

/// Whether a re-encode into NGFF 0.5 writes sharded arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharding {
    /// One file per chunk.
    #[default]
    None,
    /// Zarr v3 shards of whole chunks, up to [`SHARD_BYTES`] each (NGFF 0.5 only).
    Shards,
}

/// Stages `src` at `target` in NGFF `want`: linked verbatim when versions match, re-encoded otherwise.
pub fn pass_through(
    src: &Path,
    target: &Path,
    want: NgffVersion,
    compression: Compression,
) -> Result<CopyReport> {
    pass_through_sharded(src, target, want, compression, Sharding::None)
}

/// [`pass_through`], re-encoding into sharded arrays when `sharding` asks for it and `want`
/// is NGFF 0.5 (a store already in the wanted version is linked as it is).
pub fn pass_through_sharded(
    src: &Path,
    target: &Path,
    want: NgffVersion,
    compression: Compression,
    sharding: Sharding,
) -> Result<CopyReport> {
    let sharding = if want == NgffVersion::V05 {
        sharding
    } else {
        Sharding::None
    };
    let have = store_version(src)?;
    let staging = StagingDir::new(target)?;
    let mut report = if have == want {
        link_tree(src, staging.path())?
    } else {
        configure_zarrs();
        let mut r = CopyReport {
            target: target.to_path_buf(),
            mode: CopyMode::Reencode,
            files: 0,
            bytes: 0,
            arrays: 0,
        };
        let mut arrays = Vec::new();
        let enc = Encoding {
            want,
            compression,
            sharding,
        };
        reencode_node(src, staging.path(), enc, None, &mut r, &mut arrays)?;
        copy_chunks(&arrays, &mut r)?;
        r
    };
    report.target = staging.commit()?;
    Ok(report)
}

fn link_tree(src: &Path, dst: &Path) -> Result<CopyReport> {
    let mut files = Vec::new();
    collect_files(src, Path::new(""), &mut files)?;
    let outcomes: Vec<(bool, u64)> = files
        .par_iter()
        .map(|rel| -> Result<(bool, u64)> {
            let (from, to) = (src.join(rel), dst.join(rel));
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(|e| NgffError::io(parent, e))?;
            }
            let size = std::fs::metadata(&from)
                .map_err(|e| NgffError::io(&from, e))?
                .len();
            let linked = std::fs::hard_link(&from, &to).is_ok();
            if !linked {
                std::fs::copy(&from, &to).map_err(|e| NgffError::io(&to, e))?;
            }
            let got = std::fs::metadata(&to)
                .map_err(|e| NgffError::io(&to, e))?
                .len();
            if got != size {
                return Err(NgffError::Verify {
                    path: to,
                    message: format!("{size} bytes in the source, {got} in the copy"),
                });
            }
            Ok((linked, size))
        })
        .collect::<Result<_>>()?;
    let linked = outcomes.iter().filter(|o| o.0).count();
    Ok(CopyReport {
        target: dst.to_path_buf(),
        mode: match linked {
            0 if !outcomes.is_empty() => CopyMode::Copy,
            n if n == outcomes.len() => CopyMode::Hardlink,
            _ => CopyMode::Mixed,
        },
        files: outcomes.len() as u64,
        bytes: outcomes.iter().map(|o| o.1).sum(),
        arrays: 0,
    })
}

fn collect_files(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let dir = root.join(rel);
    for e in std::fs::read_dir(&dir).map_err(|e| NgffError::io(&dir, e))? {
        let e = e.map_err(|e| NgffError::io(&dir, e))?;
        let ft = e.file_type().map_err(|er| NgffError::io(e.path(), er))?;
        let r = rel.join(e.file_name());
        if ft.is_dir() {
            collect_files(root, &r, out)?;
        } else if ft.is_file() {
            out.push(r);
        } else {
            return Err(NgffError::Invalid {
                message: format!(
                    "{} is neither a file nor a directory (symlink or device); refusing to stage it",
                    e.path().display()
                ),
            });
        }
    }
    Ok(())
}

const OME_KEYS: [&str; 8] = [
    "multiscales",
    "omero",
    "plate",
    "well",
    "labels",
    "image-label",
    "bioformats2raw.layout",
    "series",
];

/// OME attributes converted to `want` (0.4 carries inner `version` keys, 0.5 does not).
pub fn convert_attrs(ome: &Map<String, Value>, want: NgffVersion) -> Map<String, Value> {
    let mut out = Map::new();
    for k in OME_KEYS {
        let Some(v) = ome.get(k) else { continue };
        let mut v = v.clone();
        let set = |o: &mut Value| {
            if let Value::Object(m) = o {
                match want {
                    NgffVersion::V04 => {
                        m.insert("version".into(), json!("0.4"));
                    }
                    NgffVersion::V05 => {
                        m.remove("version");
                    }
                }
            }
        };
        match k {
            "multiscales" => {
                if let Value::Array(a) = &mut v {
                    a.iter_mut().for_each(set);
                }
            }
            "plate" | "well" | "image-label" => set(&mut v),
            _ => {}
        }
        out.insert(k.to_owned(), v);
    }
    out
}

/// Whether `p` holds Zarr metadata (v2 or v3) of a group or an array.
pub fn is_zarr_dir(p: &Path) -> bool {
    p.join("zarr.json").is_file()
        || p.join(".zgroup").is_file()
        || p.join(".zarray").is_file()
        || p.join(".zattrs").is_file()
}

/// An array to re-encode: its source and its (already created) target.
struct ArrayJob {
    src: PathBuf,
    dst: PathBuf,
    level: String,
    source: Array<FilesystemStore>,
    target: Array<FilesystemStore>,
    /// The grid copied unit by unit: the source's chunks, or the target's shards.
    grid: Vec<u64>,
    sharded: bool,
}

/// What a re-encode writes.
#[derive(Debug, Clone, Copy)]
struct Encoding {
    want: NgffVersion,
    compression: Compression,
    sharding: Sharding,
}

/// Writes the groups of the hierarchy and creates the target arrays; chunks are copied later, all at once.
fn reencode_node(
    src: &Path,
    dst: &Path,
    enc: Encoding,
    axes: Option<&[String]>,
    report: &mut CopyReport,
    arrays: &mut Vec<ArrayJob>,
) -> Result<()> {
    let want = enc.want;
    let node = Node::open(src)?;
    if node.node_type == NodeType::Array {
        arrays.push(create_target_array(src, dst, enc, axes)?);
        return Ok(());
    }
    let converted = convert_attrs(&node.ome, want);
    attrs::write_group(dst, &converted, want)?;
    report.files += 1;
    let names: Option<Vec<String>> = converted
        .get("multiscales")
        .and_then(|m| m.get(0))
        .and_then(|m| m.get("axes"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| {
                    x.get("name")
                        .and_then(Value::as_str)
                        .or_else(|| x.as_str())
                        .map(str::to_owned)
                })
                .collect()
        });
    let mut children: Vec<PathBuf> = std::fs::read_dir(src)
        .map_err(|e| NgffError::io(src, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    children.sort();
    for child in children {
        let name = child
            .file_name()
            .map(std::ffi::OsStr::to_os_string)
            .unwrap_or_default();
        if child.is_dir() && is_zarr_dir(&child) {
            reencode_node(
                &child,
                &dst.join(&name),
                enc,
                names.as_deref(),
                report,
                arrays,
            )?;
        } else if child.is_dir() {
            // a group whose metadata is implicit (Zarr v3 allows it) or non-Zarr content
            let mut files = Vec::new();
            collect_files(&child, Path::new(""), &mut files)?;
            if files.iter().any(|f| {
                f.file_name()
                    .is_some_and(|n| n == ".zarray" || n == "zarr.json")
            }) {
                return Err(NgffError::metadata(
                    &child,
                    "a Zarr group without its own metadata; cannot re-encode",
                ));
            }
            for f in files {
                let to = dst.join(&name).join(&f);
                if let Some(p) = to.parent() {
                    std::fs::create_dir_all(p).map_err(|e| NgffError::io(p, e))?;
                }
                std::fs::copy(child.join(&f), &to).map_err(|e| NgffError::io(&to, e))?;
                report.files += 1;
            }
        }
    }
    Ok(())
}

fn dtype_of_node(src: &Path, format: ZarrFormat) -> Result<PixelType> {
    let (file, key) = match format {
        ZarrFormat::V2 => (src.join(".zarray"), "dtype"),
        ZarrFormat::V3 => (src.join("zarr.json"), "data_type"),
    };
    let bytes = stage_common::limits::read_metadata(&file)
        .map_err(|e| NgffError::metadata_read(&file, e))?;
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|e| NgffError::metadata(&file, e.to_string()))?;
    let raw = v
        .get(key)
        .map(|d| d.as_str().map_or_else(|| d.to_string(), str::to_owned))
        .unwrap_or_default();
    PixelType::parse(&raw).ok_or(NgffError::UnsupportedDtype {
        path: src.to_path_buf(),
        dtype: raw,
    })
}

fn create_target_array(
    src: &Path,
    dst: &Path,
    enc: Encoding,
    axes: Option<&[String]>,
) -> Result<ArrayJob> {
    let (want, compression) = (enc.want, enc.compression);
    let (src_root, src_name) = split(src)?;
    let (dst_root, dst_name) = split(dst)?;
    let node = Node::open(src)?;
    let dtype = dtype_of_node(src, node.format)?;
    let store = std::sync::Arc::new(
        FilesystemStore::new(src_root).map_err(|e| NgffError::write(src_root, e))?,
    );
    let source = Array::open(store, &format!("/{src_name}"))
        .map_err(|e| NgffError::metadata(src, e.to_string()))?;
    let shape = source.shape().to_vec();
    let grid = source.chunk_grid_shape().to_vec();
    let chunks: Vec<u64> = source
        .chunk_shape(&vec![0; shape.len()])
        .map_err(|e| NgffError::metadata(src, e.to_string()))?
        .iter()
        .map(|c| c.get())
        .collect();
    let shard = (enc.sharding == Sharding::Shards)
        .then(|| shard_shape(&shape, &chunks, dtype.size() as u64, SHARD_BYTES));
    let layout = ArrayLayout {
        shape: shape.clone(),
        chunks,
        shard: shard.clone(),
        dtype,
        compression,
        dimension_names: axes
            .filter(|a| a.len() == shape.len())
            .map(<[String]>::to_vec)
            .unwrap_or_default(),
    };
    let target = create_array(dst_root, dst_name, &layout, crate::node::zarr_format(want))?;
    let (grid, sharded) = match shard {
        Some(_) => (target.chunk_grid_shape().to_vec(), true),
        None => (grid, false),
    };
    Ok(ArrayJob {
        src: src.to_path_buf(),
        dst: dst.to_path_buf(),
        level: src_name.to_owned(),
        source,
        target,
        grid,
        sharded,
    })
}

/// The shard of an array of `shape` in `chunks` (`size` bytes per element): whole chunks,
/// spanning the whole array where it fits in `most` bytes; otherwise single chunks along the
/// leading axes (t, c, z), then fewer rows of chunks, then fewer columns, never less than one
/// chunk.
pub fn shard_shape(shape: &[u64], chunks: &[u64], size: u64, most: u64) -> Vec<u64> {
    let mut shard: Vec<u64> = shape
        .iter()
        .zip(chunks)
        .map(|(s, c)| s.div_ceil((*c).max(1)).max(1) * (*c).max(1))
        .collect();
    let bytes = |s: &[u64]| s.iter().product::<u64>().saturating_mul(size);
    let n = shard.len();
    for d in 0..n.saturating_sub(2) {
        if bytes(&shard) <= most {
            return shard;
        }
        shard[d] = chunks[d].max(1);
    }
    if n >= 2 && bytes(&shard) > most {
        // rows of chunks of the plane: as many as fit, at least one
        let y = n - 2;
        let cy = chunks[y].max(1);
        let row = bytes(&shard) / shard[y].max(1);
        let rows = (most / row.max(1) / cy).max(1) * cy;
        shard[y] = rows.min(shard[y]);
        // a chunk row wider than a shard: columns of chunks, at least one
        let x = n - 1;
        let cx = chunks[x].max(1);
        if bytes(&shard) > most {
            let col = bytes(&shard) / shard[x].max(1);
            shard[x] = ((most / col.max(1) / cx).max(1) * cx).min(shard[x]);
        }
    }
    shard
}

/// Copies every chunk of every array in one parallel pass, then reads every one back to compare.
fn copy_chunks(arrays: &[ArrayJob], report: &mut CopyReport) -> Result<()> {
    let work: Vec<(usize, Vec<u64>)> = arrays
        .iter()
        .enumerate()
        .flat_map(|(a, job)| indices(&job.grid).into_iter().map(move |idx| (a, idx)))
        .collect();
    let copied: Vec<Option<(usize, Vec<u64>, u128, u64)>> = work
        .par_iter()
        .map(|(a, idx)| -> Result<Option<(usize, Vec<u64>, u128, u64)>> {
            let job = &arrays[*a];
            let corrupt = |m: String| NgffError::CorruptChunk {
                path: job.src.clone(),
                level: job.level.clone(),
                chunk: idx.clone(),
                message: m,
            };
            if job.sharded {
                // one shard: the source's region it covers, decoded whole, written at once
                let region = job
                    .target
                    .chunk_subset_bounded(idx)
                    .map_err(|e| NgffError::write(&job.dst, e))?;
                let raw = job
                    .source
                    .retrieve_array_subset::<ArrayBytes<'static>>(&region)
                    .map_err(|e| corrupt(e.to_string()))?
                    .into_fixed()
                    .map_err(|e| corrupt(e.to_string()))?;
                let hash = xxhash_rust::xxh3::xxh3_128(&raw);
                let n = raw.len() as u64;
                job.target
                    .store_array_subset(&region, ArrayBytes::new_flen(raw))
                    .map_err(|e| NgffError::write(&job.dst, e))?;
                return Ok(Some((*a, idx.clone(), hash, n)));
            }
            let Some(bytes) = job
                .source
                .retrieve_chunk_if_exists::<ArrayBytes<'static>>(idx)
                .map_err(|e| corrupt(e.to_string()))?
            else {
                return Ok(None);
            };
            let raw = bytes.into_fixed().map_err(|e| corrupt(e.to_string()))?;
            let hash = xxhash_rust::xxh3::xxh3_128(&raw);
            let n = raw.len() as u64;
            job.target
                .store_chunk(idx, ArrayBytes::new_flen(raw))
                .map_err(|e| NgffError::write(&job.dst, e))?;
            Ok(Some((*a, idx.clone(), hash, n)))
        })
        .collect::<Result<_>>()?;
    copied
        .par_iter()
        .flatten()
        .try_for_each(|(a, idx, hash, _)| {
            let job = &arrays[*a];
            let verify = |message: String| NgffError::Verify {
                path: job.dst.clone(),
                message,
            };
            let back = if job.sharded {
                let region = job
                    .target
                    .chunk_subset_bounded(idx)
                    .map_err(|e| verify(format!("shard {idx:?}: {e}")))?;
                job.target
                    .retrieve_array_subset::<ArrayBytes<'static>>(&region)
                    .map_err(|e| verify(format!("shard {idx:?}: {e}")))?
            } else {
                job.target
                    .retrieve_chunk::<ArrayBytes<'static>>(idx)
                    .map_err(|e| verify(format!("chunk {idx:?}: {e}")))?
            }
            .into_fixed()
            .map_err(|e| verify(e.to_string()))?;
            let h = xxhash_rust::xxh3::xxh3_128(&back);
            if &h == hash {
                Ok(())
            } else {
                Err(verify(format!("chunk {idx:?} differs after re-encoding")))
            }
        })?;
    report.arrays += arrays.len() as u64;
    report.files += copied.iter().flatten().count() as u64 + arrays.len() as u64;
    report.bytes += copied.iter().flatten().map(|c| c.3).sum::<u64>();
    Ok(())
}

fn split(p: &Path) -> Result<(&Path, &str)> {
    match (p.parent(), p.file_name().and_then(|n| n.to_str())) {
        (Some(parent), Some(name)) => Ok((parent, name)),
        _ => Err(NgffError::Invalid {
            message: format!("{} has no parent directory or is not UTF-8", p.display()),
        }),
    }
}

/// All indices of a grid, C order.
pub fn indices(grid: &[u64]) -> Vec<Vec<u64>> {
    let total: u64 = grid.iter().product();
    (0..total)
        .map(|mut i| {
            let mut idx = vec![0; grid.len()];
            for d in (0..grid.len()).rev() {
                idx[d] = i % grid[d];
                i /= grid[d];
            }
            idx
        })
        .collect()
}

#[cfg(test)]
mod shard_tests {
    use super::shard_shape;

    #[test]
    fn a_shard_is_whole_chunks_as_large_as_fits() {
        // a small field: everything in one shard, rounded up to whole chunks
        assert_eq!(
            shard_shape(&[1, 2, 2, 600, 600], &[1, 1, 1, 512, 512], 2, 32 << 20),
            [1, 2, 2, 1024, 1024]
        );
        // 4 channels of 2160²: one channel per shard
        assert_eq!(
            shard_shape(&[1, 4, 1, 2160, 2160], &[1, 1, 1, 1024, 1024], 2, 32 << 20),
            [1, 1, 1, 3072, 3072]
        );
        // a plane larger than a shard: rows of chunks, then columns, at least one chunk
        assert_eq!(
            shard_shape(
                &[1, 1, 1, 40_000, 40_000],
                &[1, 1, 1, 1024, 1024],
                2,
                32 << 20
            ),
            [1, 1, 1, 1024, 16_384]
        );
        let s = shard_shape(&[2, 3, 5, 8192, 8192], &[1, 1, 1, 1024, 1024], 2, 32 << 20);
        assert_eq!(s, [1, 1, 1, 2048, 8192]);
        assert!(s.iter().product::<u64>() * 2 <= 32 << 20);
    }
}
