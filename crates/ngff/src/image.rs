//! Reading OME-Zarr images, plane by plane, with bounded memory.
//!
//! [`ImageReader::open`] checks an image before any pixel moves: every level
//! listed in `multiscales` must be on disk, the axes must fit the arrays, the
//! data type must be stageable and the dimensions plausible. [`PlaneReader`]
//! then assembles YX planes from chunks: the chunks of a plane are decoded in
//! parallel (rayon), decoded chunks are kept in a small byte-bounded cache so
//! that chunks spanning several planes are decoded once, and the caller's
//! plane buffer is reused.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;
use zarrs::array::{Array, ArrayBytes};
use zarrs::filesystem::FilesystemStore;

use crate::axes::{AxisMap, Sizes};
use crate::dtype::PixelType;
use crate::error::{NgffError, Result};
use crate::meta::{self, ImageLabelMeta, MultiscaleMeta, OmeroMeta, TransformMeta};
use crate::node::{NgffVersion, Node, NodeKind, ZarrFormat};

/// Largest dimension accepted in metadata (2^32); anything larger is not a real image.
pub const MAX_DIMENSION: u64 = 1 << 32;

/// Largest YX plane read in one piece (4 GiB).
pub const MAX_PLANE_BYTES: u64 = 4 << 30;

/// One resolution level.
#[derive(Debug, Clone)]
pub struct Level {
    /// The dataset path (`0`, `s0`, …).
    pub path: String,
    /// The array.
    pub array: Arc<Array<FilesystemStore>>,
    /// Its shape.
    pub shape: Vec<u64>,
    /// Its chunk (or shard) shape.
    pub chunks: Vec<u64>,
    /// Scale per axis (level scale × global scale; 1 where absent).
    pub scale: Vec<f64>,
}

/// Physical pixel sizes, with units as written.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct PhysicalSizes {
    /// Pixel width and its unit.
    pub x: Option<(f64, Option<String>)>,
    /// Pixel height and its unit.
    pub y: Option<(f64, Option<String>)>,
    /// Z step and its unit.
    pub z: Option<(f64, Option<String>)>,
    /// Time step and its unit.
    pub t: Option<(f64, Option<String>)>,
}

/// An OME-Zarr image, checked and ready to read.
#[derive(Debug, Clone)]
pub struct ImageReader {
    /// The image group.
    pub root: PathBuf,
    /// Zarr format.
    pub format: ZarrFormat,
    /// NGFF version.
    pub version: NgffVersion,
    /// Image name (multiscales name, omero name, or the directory name).
    pub name: String,
    /// Axes.
    pub axes: AxisMap,
    /// Pixel type.
    pub dtype: PixelType,
    /// Levels, full resolution first.
    pub levels: Vec<Level>,
    /// The multiscales entry as read.
    pub multiscale: MultiscaleMeta,
    /// The `omero` block, if any.
    pub omero: Option<OmeroMeta>,
    /// `image-label`, if this is a label image.
    pub image_label: Option<ImageLabelMeta>,
    /// All OME attributes of the group.
    pub attributes: serde_json::Map<String, Value>,
}

fn dtype_of(level_dir: &Path, format: ZarrFormat) -> Result<PixelType> {
    let (file, key) = match format {
        ZarrFormat::V2 => (level_dir.join(".zarray"), "dtype"),
        ZarrFormat::V3 => (level_dir.join("zarr.json"), "data_type"),
    };
    let bytes = stage_common::limits::read_metadata(&file)
        .map_err(|e| NgffError::metadata_read(&file, e))?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| NgffError::metadata(&file, format!("not valid JSON: {e}")))?;
    let raw = match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => return Err(NgffError::metadata(&file, format!("no `{key}`"))),
    };
    PixelType::parse(&raw).ok_or(NgffError::UnsupportedDtype {
        path: level_dir.to_path_buf(),
        dtype: raw,
    })
}

fn scales(transforms: &[TransformMeta]) -> Option<Vec<f64>> {
    transforms.iter().find_map(|t| match t {
        TransformMeta::Scale { scale: Some(s), .. } => Some(s.clone()),
        _ => None,
    })
}

impl ImageReader {
    /// Opens an image group (or the single series of a bioformats2raw store).
    pub fn open(path: &Path) -> Result<Self> {
        let node = Node::open(path)?;
        match node.kind() {
            NodeKind::Image { .. } => Self::from_node(node),
            NodeKind::Bioformats2Raw => {
                let series = bioformats2raw_series(path)?;
                match series.as_slice() {
                    [one] => Self::open(&path.join(one)),
                    _ => Err(NgffError::Invalid {
                        message: format!(
                            "{} is a bioformats2raw store with {} series ({}); name one, e.g. {}",
                            path.display(),
                            series.len(),
                            series.join(", "),
                            path.join(series.first().map_or("0", String::as_str))
                                .display()
                        ),
                    }),
                }
            }
            NodeKind::Plate => Err(NgffError::Invalid {
                message: format!(
                    "{} is an HCS plate, not an image; open it as a plate",
                    path.display()
                ),
            }),
            other => Err(NgffError::metadata(
                path,
                format!("not an OME-Zarr image (no multiscales; this node is {other:?})"),
            )),
        }
    }

    fn from_node(node: Node) -> Result<Self> {
        crate::write::array::configure_zarrs();
        let root = node.path.clone();
        let all: Vec<MultiscaleMeta> = meta::get(&node.ome, "multiscales")
            .map_err(|m| NgffError::metadata(&root, m))?
            .unwrap_or_default();
        let Some(ms) = all.into_iter().next() else {
            return Err(NgffError::metadata(&root, "`multiscales` is empty"));
        };
        if ms.datasets.is_empty() {
            return Err(NgffError::metadata(&root, "multiscales has no datasets"));
        }
        let global_scale = scales(&ms.transforms);
        let store = Arc::new(FilesystemStore::new(&root).map_err(|e| NgffError::write(&root, e))?);
        let mut levels = Vec::with_capacity(ms.datasets.len());
        let mut dtype = None;
        for d in &ms.datasets {
            if d.path.split('/').any(|s| s == ".." || s.is_empty()) {
                return Err(NgffError::metadata(
                    &root,
                    format!("dataset path `{}` is not a relative path", d.path),
                ));
            }
            let dir = root.join(&d.path);
            let meta_file = match node.format {
                ZarrFormat::V2 => ".zarray",
                ZarrFormat::V3 => "zarr.json",
            };
            if !dir.join(meta_file).is_file() {
                return Err(NgffError::MissingLevel {
                    path: root.clone(),
                    level: d.path.clone(),
                    missing: dir.join(meta_file).display().to_string(),
                });
            }
            let t = dtype_of(&dir, node.format)?;
            if dtype.is_some_and(|d| d != t) {
                return Err(NgffError::metadata(
                    &root,
                    format!("level `{}` has data type {t}, level 0 another", d.path),
                ));
            }
            dtype = Some(t);
            let array = Array::open(store.clone(), &format!("/{}", d.path))
                .map_err(|e| NgffError::metadata(&dir, e.to_string()))?;
            let shape = array.shape().to_vec();
            for (i, s) in shape.iter().enumerate() {
                if *s >= MAX_DIMENSION {
                    return Err(NgffError::TooLarge {
                        path: dir.clone(),
                        message: format!(
                            "dimension {i} is {s} pixels long (≥ 2^32): the metadata is implausible or the image too large to stage"
                        ),
                    });
                }
            }
            let chunks: Vec<u64> = array
                .chunk_shape(&vec![0; shape.len()])
                .map_err(|e| NgffError::metadata(&dir, e.to_string()))?
                .iter()
                .map(|c| c.get())
                .collect();
            let mut scale = scales(&d.transforms).unwrap_or_else(|| vec![1.0; shape.len()]);
            if let Some(g) = &global_scale
                && g.len() == scale.len()
            {
                scale.iter_mut().zip(g).for_each(|(s, g)| *s *= g);
            }
            levels.push(Level {
                path: d.path.clone(),
                array: Arc::new(array),
                shape,
                chunks,
                scale,
            });
        }
        let rank = levels[0].shape.len();
        let axes = AxisMap::from_meta(&ms.axes, rank, &root)?;
        for l in &levels[1..] {
            if l.shape.len() != rank {
                return Err(NgffError::Axes {
                    path: root.clone(),
                    message: format!(
                        "level `{}` has {} dimensions, level 0 has {rank}",
                        l.path,
                        l.shape.len()
                    ),
                });
            }
        }
        let omero: Option<OmeroMeta> = meta::get(&node.ome, "omero").unwrap_or_default();
        let image_label: Option<ImageLabelMeta> =
            meta::get(&node.ome, "image-label").map_err(|m| NgffError::metadata(&root, m))?;
        let name = ms
            .name
            .clone()
            .or_else(|| omero.as_ref().and_then(|o| o.name.clone()))
            .filter(|n| !n.is_empty() && n != "/")
            .unwrap_or_else(|| store_stem(&root));
        Ok(ImageReader {
            version: node.ngff_version(),
            format: node.format,
            root,
            name,
            axes,
            dtype: dtype.unwrap_or(PixelType::Uint8),
            levels,
            multiscale: ms,
            omero,
            image_label,
            attributes: node.ome,
        })
    }

    /// TCZYX sizes of the full-resolution level.
    pub fn sizes(&self) -> Sizes {
        self.axes.sizes(&self.levels[0].shape)
    }

    /// Bytes of one full-resolution plane.
    pub fn plane_bytes(&self) -> u64 {
        let s = self.sizes();
        s.y * s.x * self.dtype.size() as u64
    }

    /// Physical pixel sizes of the full-resolution level.
    pub fn physical_sizes(&self) -> PhysicalSizes {
        let l = &self.levels[0];
        let get = |i: Option<usize>| {
            i.and_then(|i| {
                l.scale
                    .get(i)
                    .map(|s| (*s, self.axes.unit(Some(i)).map(str::to_owned)))
            })
        };
        PhysicalSizes {
            x: get(Some(self.axes.x)),
            y: get(Some(self.axes.y)),
            z: get(self.axes.z),
            t: get(self.axes.t),
        }
    }

    /// The channels as `omero` describes them (name, colour, display window), the defaults
    /// where it says nothing.
    pub fn channel_specs(&self) -> Vec<crate::write::attrs::ChannelSpec> {
        let chans = self
            .omero
            .as_ref()
            .map(|o| o.channels.as_slice())
            .unwrap_or_default();
        let colors: Vec<Option<String>> = chans.iter().map(|c| c.color.clone()).collect();
        let windows: Vec<Option<(f64, f64)>> = chans
            .iter()
            .map(|c| c.window.as_ref().and_then(|w| w.start.zip(w.end)))
            .collect();
        crate::write::attrs::ChannelSpec::described(
            self.sizes().c,
            &self.channel_names(),
            &colors,
            &windows,
        )
    }

    /// Channel names (from `omero`; `C0`, `C1`, … otherwise).
    pub fn channel_names(&self) -> Vec<String> {
        let n = usize::try_from(self.sizes().c).unwrap_or(0);
        (0..n)
            .map(|i| {
                self.omero
                    .as_ref()
                    .and_then(|o| o.channels.get(i))
                    .and_then(|c| c.label.clone())
                    .filter(|l| !l.is_empty())
                    .unwrap_or_else(|| format!("C{i}"))
            })
            .collect()
    }

    /// What the NGFF specification (and ome-zarr-models, which checks it) rejects in this
    /// image although it can be read: levels out of order (each must be as coarse as the one
    /// before it, on every axis, in scale and in shape), and `omero.channels` that do not list
    /// one entry per channel (OMERO would show the wrong ones).
    pub fn conformance_problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let root = self.root.display();
        for pair in self.levels.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let axes = self.axes.names.iter();
            for (k, name) in axes.enumerate() {
                let (sa, sb) = (a.scale.get(k).copied(), b.scale.get(k).copied());
                if let (Some(sa), Some(sb)) = (sa, sb)
                    && sb < sa
                {
                    out.push(format!(
                        "{root}: level `{}` is finer than level `{}` on axis `{name}` (scale {sb} < {sa}); levels go from the finest to the coarsest",
                        b.path, a.path
                    ));
                    break;
                }
                let (na, nb) = (a.shape.get(k).copied(), b.shape.get(k).copied());
                if let (Some(na), Some(nb)) = (na, nb)
                    && nb > na
                {
                    out.push(format!(
                        "{root}: level `{}` is larger than level `{}` on axis `{name}` ({nb} > {na}); levels go from the finest to the coarsest",
                        b.path, a.path
                    ));
                    break;
                }
            }
        }
        if let Some(o) = &self.omero {
            let c = self.sizes().c;
            let listed = o.channels.len() as u64;
            if !o.channels.is_empty() && listed != c {
                out.push(format!(
                    "{root}: omero.channels lists {listed} channel(s) for C = {c}; OMERO would show the wrong channels: list one entry per channel"
                ));
            }
        }
        out
    }

    /// Names of the label images under `labels/` (empty when there are none).
    pub fn label_names(&self) -> Result<Vec<String>> {
        let dir = self.root.join("labels");
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        let node = Node::open(&dir)?;
        Ok(meta::get::<Vec<String>>(&node.ome, "labels")
            .map_err(|m| NgffError::metadata(&dir, m))?
            .unwrap_or_default())
    }

    /// Opens a label image and checks that it fits this image (same t, z, y, x).
    pub fn label(&self, name: &str) -> Result<ImageReader> {
        let path = self.root.join("labels").join(name);
        let l = ImageReader::open(&path)?;
        let (a, b) = (self.sizes(), l.sizes());
        if (a.t, a.z, a.y, a.x) != (b.t, b.z, b.y, b.x) {
            return Err(NgffError::Labels {
                path,
                message: format!(
                    "label image is t={} z={} y={} x={} but its image is t={} z={} y={} x={}: a label image must match its source's shape",
                    b.t, b.z, b.y, b.x, a.t, a.z, a.y, a.x
                ),
            });
        }
        Ok(l)
    }

    /// Every label image under `labels/`, each opened and checked against this image (the
    /// same check `inspect` reports): the names, or the first that does not match.
    pub fn checked_labels(&self) -> Result<Vec<String>> {
        let names = self.label_names()?;
        for n in &names {
            self.label(n)?;
        }
        Ok(names)
    }

    /// A plane reader for `level` with a decoded-chunk cache of `cache_bytes`.
    pub fn plane_reader(&self, level: usize, cache_bytes: usize) -> Result<PlaneReader<'_>> {
        let l = self.levels.get(level).ok_or_else(|| NgffError::Invalid {
            message: format!("{} has no level {level}", self.root.display()),
        })?;
        let s = self.axes.sizes(&l.shape);
        let plane = s.y * s.x * self.dtype.size() as u64;
        if plane > MAX_PLANE_BYTES {
            return Err(NgffError::TooLarge {
                path: self.root.join(&l.path),
                message: format!(
                    "one YX plane is {} MiB (y={} x={}), above the {} MiB a plane may take; stage a lower level or tile the image",
                    plane >> 20,
                    s.y,
                    s.x,
                    MAX_PLANE_BYTES >> 20
                ),
            });
        }
        Ok(PlaneReader {
            image: self,
            level: l,
            sizes: s,
            cache: HashMap::new(),
            order: VecDeque::new(),
            cached_bytes: 0,
            budget: cache_bytes,
            missing_chunks: 0,
        })
    }
}

/// The series of a bioformats2raw store (`OME/.zattrs` `series`, else numbered groups).
pub fn bioformats2raw_series(path: &Path) -> Result<Vec<String>> {
    let ome = path.join("OME");
    if let Ok(node) = Node::open(&ome)
        && let Ok(Some(series)) = meta::get::<Vec<String>>(&node.ome, "series")
    {
        return Ok(series);
    }
    let mut out: Vec<(u64, String)> = std::fs::read_dir(path)
        .map_err(|e| NgffError::io(path, e))?
        .filter_map(std::result::Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name.parse::<u64>().ok()?;
            e.path().is_dir().then_some((n, name))
        })
        .collect();
    out.sort();
    Ok(out.into_iter().map(|(_, n)| n).collect())
}

/// `img.ome.zarr` → `img`.
pub fn store_stem(path: &Path) -> String {
    let name = path
        .file_name()
        .map_or_else(|| "image".to_owned(), |n| n.to_string_lossy().into_owned());
    for ext in [".ome.zarr", ".zarr"] {
        if let Some(s) = name.strip_suffix(ext) {
            return s.to_owned();
        }
    }
    name
}

/// Reads YX planes of one level.
pub struct PlaneReader<'a> {
    image: &'a ImageReader,
    level: &'a Level,
    sizes: Sizes,
    cache: HashMap<Vec<u64>, Arc<Option<Vec<u8>>>>,
    order: VecDeque<Vec<u64>>,
    cached_bytes: usize,
    budget: usize,
    /// Chunks that were absent from the store and read as the fill value (0).
    pub missing_chunks: u64,
}

impl PlaneReader<'_> {
    /// TCZYX sizes of this level.
    pub fn sizes(&self) -> Sizes {
        self.sizes
    }

    /// Bytes of one plane.
    pub fn plane_bytes(&self) -> usize {
        usize::try_from(self.sizes.y * self.sizes.x).unwrap_or(usize::MAX) * self.image.dtype.size()
    }

    fn decode(&self, idx: &[u64]) -> Result<Option<Vec<u8>>> {
        let corrupt = |message: String| NgffError::CorruptChunk {
            path: self.image.root.clone(),
            level: self.level.path.clone(),
            chunk: idx.to_vec(),
            message,
        };
        match self
            .level
            .array
            .retrieve_chunk_if_exists::<ArrayBytes<'static>>(idx)
        {
            Ok(None) => Ok(None),
            Ok(Some(bytes)) => {
                let raw = bytes.into_fixed().map_err(|e| corrupt(e.to_string()))?;
                Ok(Some(raw.into_owned()))
            }
            Err(e) => Err(corrupt(e.to_string())),
        }
    }

    /// Bytes of one sample.
    pub fn dtype_size(&self) -> usize {
        self.image.dtype.size()
    }

    /// Height of one chunk row: the unit [`PlaneReader::read_rows`] starts at.
    pub fn chunk_rows(&self) -> u64 {
        self.level.chunks[self.image.axes.y].max(1)
    }

    /// Reads plane (t, c, z) into `out` (native-endian samples, row-major, y then x).
    pub fn read_plane(&mut self, t: u64, c: u64, z: u64, out: &mut [u8]) -> Result<()> {
        self.read_rows(t, c, z, 0, self.sizes.y, out)
    }

    /// Reads `rows` rows of plane (t, c, z) from row `y0` (a multiple of
    /// [`PlaneReader::chunk_rows`]) into `out`: a band of the plane, so a plane of any
    /// size is read with memory bounded by the band.
    ///
    /// The band is cut into chunk rows; they are filled in parallel (each decodes its
    /// chunks and copies them into its own rows), so both decoding and copying use
    /// every core.
    pub fn read_rows(
        &mut self,
        t: u64,
        c: u64,
        z: u64,
        y0: u64,
        rows: u64,
        out: &mut [u8],
    ) -> Result<()> {
        let s = self.sizes;
        if t >= s.t || c >= s.c || z >= s.z {
            return Err(NgffError::Invalid {
                message: format!("plane t={t} c={c} z={z} is outside {}×{}×{}", s.t, s.c, s.z),
            });
        }
        let cy0 = self.chunk_rows();
        if !y0.is_multiple_of(cy0) || y0.checked_add(rows).is_none_or(|end| end > s.y) {
            return Err(NgffError::Invalid {
                message: format!(
                    "rows {y0}..+{rows} are not a band of chunk rows ({cy0} high) of a plane {} high",
                    s.y
                ),
            });
        }
        let es = self.image.dtype.size();
        let want = usize::try_from(rows * s.x)
            .ok()
            .and_then(|n| n.checked_mul(es));
        if want != Some(out.len()) {
            return Err(NgffError::Invalid {
                message: format!(
                    "band buffer is {} bytes, {rows} rows of this plane are {}",
                    out.len(),
                    rows * s.x * es as u64
                ),
            });
        }
        let axes = &self.image.axes;
        let chunks = &self.level.chunks;
        let origin = axes.plane_origin(t, c, z);
        let (cy, cx) = (chunks[axes.y], chunks[axes.x]);
        let first_band = y0 / cy;
        let nx = s.x.div_ceil(cx);
        let width = usize::try_from(s.x).unwrap_or(0);
        let band_bytes = usize::try_from(cy).unwrap_or(0) * width * es;
        // offset of plane (t, c, z) inside a chunk, in elements
        let base: usize = {
            let mut stride = 1u64;
            let mut off = 0u64;
            for d in (0..chunks.len()).rev() {
                if d != axes.y && d != axes.x {
                    off += (origin[d] % chunks[d]) * stride;
                }
                stride *= chunks[d];
            }
            usize::try_from(off).unwrap_or(0)
        };
        let chunk_index = |gy: u64, gx: u64| -> Vec<u64> {
            let mut idx: Vec<u64> = origin.iter().zip(chunks).map(|(o, c)| o / c).collect();
            idx[axes.y] = gy;
            idx[axes.x] = gx;
            idx
        };
        let cache = &self.cache;
        let this = &*self;
        let fresh: Vec<Vec<(Vec<u64>, Arc<Option<Vec<u8>>>)>> = out
            .par_chunks_mut(band_bytes.max(1))
            .enumerate()
            .map(
                |(gy, band)| -> Result<Vec<(Vec<u64>, Arc<Option<Vec<u8>>>)>> {
                    let gy = first_band + gy as u64;
                    let rows = band.len() / (width * es).max(1);
                    let decoded: Vec<(Vec<u64>, Arc<Option<Vec<u8>>>, bool)> = (0..nx)
                        .into_par_iter()
                        .map(|gx| {
                            let idx = chunk_index(gy, gx);
                            match cache.get(&idx) {
                                Some(d) => Ok((idx, Arc::clone(d), false)),
                                None => {
                                    let d = Arc::new(this.decode(&idx)?);
                                    Ok((idx, d, true))
                                }
                            }
                        })
                        .collect::<Result<_>>()?;
                    let row_stride = usize::try_from(cx).unwrap_or(0);
                    for (idx, data, _) in &decoded {
                        let x0 = usize::try_from(idx[axes.x] * cx).unwrap_or(0);
                        let cols = (width - x0).min(row_stride);
                        for r in 0..rows {
                            let dst =
                                &mut band[(r * width + x0) * es..(r * width + x0 + cols) * es];
                            match data.as_ref() {
                                Some(bytes) => {
                                    let src = (base + r * row_stride) * es;
                                    dst.copy_from_slice(&bytes[src..src + cols * es]);
                                }
                                None => dst.fill(0),
                            }
                        }
                    }
                    Ok(decoded
                        .into_iter()
                        .filter(|d| d.2)
                        .map(|(i, d, _)| (i, d))
                        .collect())
                },
            )
            .collect::<Result<_>>()?;
        for (idx, data) in fresh.into_iter().flatten() {
            if data.is_none() {
                self.missing_chunks += 1;
            }
            self.cached_bytes += data.as_ref().as_ref().map_or(0, Vec::len);
            self.cache.insert(idx.clone(), data);
            self.order.push_back(idx);
        }
        // keep the cache within budget (this band's chunks are already copied)
        while self.cached_bytes > self.budget {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(d) = self.cache.remove(&old) {
                self.cached_bytes -= d.as_ref().as_ref().map_or(0, Vec::len);
            }
        }
        Ok(())
    }
}
