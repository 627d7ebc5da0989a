//! Writing one OME-Zarr image (or label image), plane by plane.
//!
//! [`ImageWriter`] creates the image group and one array per pyramid level
//! up front, then takes full-resolution YX planes: each plane is cut into
//! whole chunks (or shards), encoded in parallel and stored, and 2× nearest
//! downsampled into the next level, so memory stays at a few planes whatever
//! the image size. Images are always written 5D (t, c, z, y, x), the shape
//! every NGFF reader understands.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use zarrs::array::{Array, ArrayBytes};
use zarrs::filesystem::FilesystemStore;

use crate::axes::Sizes;
use crate::dtype::PixelType;
use crate::error::{NgffError, Result};
use crate::node::NgffVersion;
use crate::write::array::{ArrayLayout, Compression, configure_zarrs, create_array};
use crate::write::atomic::StagingDir;
use crate::write::attrs::{self, ChannelSpec, DEFAULT_COLORS};

/// Everything needed to create an image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSpec {
    /// Image name.
    pub name: String,
    /// TCZYX sizes of the full-resolution level.
    pub sizes: Sizes,
    /// Pixel type.
    pub dtype: PixelType,
    /// NGFF version (0.4 → Zarr v2, 0.5 → Zarr v3).
    pub version: NgffVersion,
    /// Chunk size in y and x (default 1024 × 1024).
    pub chunk_yx: (u64, u64),
    /// Shard size in y and x (NGFF 0.5 only; a multiple of the chunk size).
    pub shard_yx: Option<(u64, u64)>,
    /// Compression.
    pub compression: Compression,
    /// Number of levels (1 = no pyramid).
    pub levels: u32,
    /// Physical size of a pixel: z, y, x in micrometres.
    pub pixel_size_zyx: [f64; 3],
    /// Time step in seconds.
    pub time_step: f64,
    /// Channels (names and colours); defaults when empty.
    pub channels: Vec<ChannelSpec>,
    /// For a label image: label colours (value, RGBA). No `omero` block is written.
    pub label_colors: Option<Vec<(u32, [u8; 4])>>,
}

impl ImageSpec {
    /// An image with default chunking (1024²), compression (blosc-zstd 1) and no pyramid.
    pub fn new(name: &str, sizes: Sizes, dtype: PixelType, version: NgffVersion) -> Self {
        ImageSpec {
            name: name.to_owned(),
            sizes,
            dtype,
            version,
            chunk_yx: (1024, 1024),
            shard_yx: None,
            compression: Compression::default(),
            levels: 1,
            pixel_size_zyx: [1.0, 1.0, 1.0],
            time_step: 1.0,
            channels: Vec::new(),
            label_colors: None,
        }
    }

    /// TCZYX sizes of level `k`.
    pub fn level_sizes(&self, k: u32) -> Sizes {
        let f = 1u64 << k;
        Sizes {
            y: self.sizes.y.div_ceil(f),
            x: self.sizes.x.div_ceil(f),
            ..self.sizes
        }
    }

    fn channel_specs(&self) -> Vec<ChannelSpec> {
        if self.label_colors.is_some() {
            return Vec::new();
        }
        (0..usize::try_from(self.sizes.c).unwrap_or(0))
            .map(|i| {
                self.channels
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| ChannelSpec {
                        label: format!("C{i}"),
                        color: DEFAULT_COLORS[i % DEFAULT_COLORS.len()].to_owned(),
                        window: None,
                    })
            })
            .collect()
    }
}

fn dtype_range(t: PixelType) -> (f64, f64) {
    match t {
        PixelType::Uint8 => (0.0, 255.0),
        PixelType::Uint16 => (0.0, 65535.0),
        PixelType::Uint32 => (0.0, f64::from(u32::MAX)),
        PixelType::Int8 => (-128.0, 127.0),
        PixelType::Int16 => (-32768.0, 32767.0),
        PixelType::Int32 => (f64::from(i32::MIN), f64::from(i32::MAX)),
        PixelType::Float32 | PixelType::Float64 => (0.0, 1.0),
    }
}

/// Writes one image, plane by plane.
pub struct ImageWriter {
    dir: PathBuf,
    spec: ImageSpec,
    /// Per level: the array, its sizes, and its grid cell (chunk or shard) in y and x.
    levels: Vec<(Array<FilesystemStore>, Sizes, (u64, u64))>,
}

impl std::fmt::Debug for ImageWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageWriter")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl ImageWriter {
    /// Creates the image group at `dir` (inside a store being written).
    pub fn create(dir: &Path, spec: ImageSpec) -> Result<Self> {
        configure_zarrs();
        let s = spec.sizes;
        if s.t == 0 || s.c == 0 || s.z == 0 || s.y == 0 || s.x == 0 {
            return Err(NgffError::write(
                dir,
                format!("empty image {}×{}×{}×{}×{}", s.t, s.c, s.z, s.y, s.x),
            ));
        }
        if spec.shard_yx.is_some() && spec.version == NgffVersion::V04 {
            return Err(NgffError::write(
                dir,
                "sharding needs NGFF 0.5 (Zarr v3); NGFF 0.4 has no shards",
            ));
        }
        let levels_n = spec.levels.clamp(1, 16);
        let paths: Vec<String> = (0..levels_n).map(|k| k.to_string()).collect();
        let [pz, py, px] = spec.pixel_size_zyx;
        let scales: Vec<[f64; 5]> = (0..levels_n)
            .map(|k| {
                let f = f64::from(1u32 << k);
                [spec.time_step, 1.0, pz, py * f, px * f]
            })
            .collect();
        let mut group = attrs::image_attrs(
            &spec.name,
            &paths,
            &scales,
            &spec.channel_specs(),
            dtype_range(spec.dtype),
            spec.version,
            "nearest",
        );
        if let Some(colors) = &spec.label_colors {
            group.insert(
                "image-label".into(),
                attrs::image_label_attrs(colors, spec.version),
            );
        }
        attrs::write_group(dir, &group, spec.version)?;
        let format = crate::node::zarr_format(spec.version);
        let mut levels = Vec::with_capacity(paths.len());
        for (k, path) in paths.iter().enumerate() {
            let ls = spec.level_sizes(u32::try_from(k).unwrap_or(0));
            let cy = spec.chunk_yx.0.min(ls.y).max(1);
            let cx = spec.chunk_yx.1.min(ls.x).max(1);
            let shard = spec.shard_yx.map(|(sy, sx)| {
                let round = |s: u64, c: u64, n: u64| (s.max(c) / c * c).min(n.div_ceil(c) * c);
                (round(sy, cy, ls.y), round(sx, cx, ls.x))
            });
            let layout = ArrayLayout {
                shape: ls.tczyx().to_vec(),
                chunks: vec![1, 1, 1, cy, cx],
                shard: shard.map(|(sy, sx)| vec![1, 1, 1, sy, sx]),
                dtype: spec.dtype,
                compression: spec.compression,
                dimension_names: ["t", "c", "z", "y", "x"].map(String::from).to_vec(),
            };
            let array = create_array(dir, path, &layout, format)?;
            levels.push((array, ls, shard.unwrap_or((cy, cx))));
        }
        Ok(ImageWriter {
            dir: dir.to_path_buf(),
            spec,
            levels,
        })
    }

    /// Creates a standalone image store at `target`, written under a temporary name.
    pub fn create_store(target: &Path, spec: ImageSpec) -> Result<(StagingDir, ImageWriter)> {
        let staging = StagingDir::new(target)?;
        let w = ImageWriter::create(staging.path(), spec)?;
        Ok((staging, w))
    }

    /// The image's spec.
    pub fn spec(&self) -> &ImageSpec {
        &self.spec
    }

    /// The image group directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes full-resolution plane (t, c, z) and its downsampled levels.
    pub fn write_plane(&self, t: u64, c: u64, z: u64, plane: &[u8]) -> Result<()> {
        let es = self.spec.dtype.size();
        let s = self.spec.sizes;
        let expect = usize::try_from(s.y * s.x).unwrap_or(usize::MAX) * es;
        if plane.len() != expect {
            return Err(NgffError::write(
                &self.dir,
                format!("plane has {} bytes, expected {expect}", plane.len()),
            ));
        }
        let mut current: std::borrow::Cow<'_, [u8]> = std::borrow::Cow::Borrowed(plane);
        for (k, (array, ls, cell)) in self.levels.iter().enumerate() {
            if k > 0 {
                let prev = self.levels[k - 1].1;
                current = std::borrow::Cow::Owned(downsample(&current, prev, *ls, es));
            }
            self.store_plane(array, *ls, *cell, [t, c, z], &current, k)?;
        }
        Ok(())
    }

    fn store_plane(
        &self,
        array: &Array<FilesystemStore>,
        ls: Sizes,
        cell: (u64, u64),
        tcz: [u64; 3],
        plane: &[u8],
        level: usize,
    ) -> Result<()> {
        self.store_rows(array, ls, cell, tcz, (0, ls.y), plane, level)
    }

    /// The rows every band of [`ImageWriter::plane_in_bands`] but the last is a multiple
    /// of: a band then starts on an even row at every level, so each level's rows are those
    /// a whole plane's downsampling picks.
    pub fn band_unit(&self) -> u64 {
        1 << self.levels.len().saturating_sub(1).min(63)
    }

    /// Writes plane (t, c, z) band by band, in order: memory holds one band of each level
    /// (the rows of a level's grid cell that are not complete yet), not the plane.
    pub fn plane_in_bands(&self, t: u64, c: u64, z: u64) -> PlaneBands<'_> {
        PlaneBands {
            writer: self,
            tcz: [t, c, z],
            next: 0,
            pending: self.levels.iter().map(|_| (0, Vec::new())).collect(),
        }
    }

    /// Stores the grid cells of rows `first .. first + rows` of a level (`first` on a cell's
    /// edge; `rows` whole cells unless they end the level), from `band`, which holds exactly
    /// those rows.
    #[allow(clippy::too_many_arguments)]
    fn store_rows(
        &self,
        array: &Array<FilesystemStore>,
        ls: Sizes,
        (cy, cx): (u64, u64),
        [t, c, z]: [u64; 3],
        (first, rows_n): (u64, u64),
        plane: &[u8],
        level: usize,
    ) -> Result<()> {
        let es = self.spec.dtype.size();
        let nx = ls.x.div_ceil(cx);
        let width = usize::try_from(ls.x).unwrap_or(0);
        let top = usize::try_from(first).unwrap_or(0);
        let cells: Vec<(u64, u64)> = (first / cy..(first + rows_n).div_ceil(cy))
            .flat_map(|gy| (0..nx).map(move |gx| (gy, gx)))
            .collect();
        cells.par_iter().try_for_each(|&(gy, gx)| {
            let (y0, x0) = (gy * cy, gx * cx);
            let rows = usize::try_from(cy.min(ls.y - y0)).unwrap_or(0);
            let cols = usize::try_from(cx.min(ls.x - x0)).unwrap_or(0);
            let (cyu, cxu) = (
                usize::try_from(cy).unwrap_or(0),
                usize::try_from(cx).unwrap_or(0),
            );
            let mut buf = vec![0u8; cyu * cxu * es];
            for r in 0..rows {
                let src = ((usize::try_from(y0).unwrap_or(0) + r - top) * width
                    + usize::try_from(x0).unwrap_or(0))
                    * es;
                let from = plane.get(src..src + cols * es).ok_or_else(|| {
                    NgffError::write(
                        self.dir.join(level.to_string()),
                        format!("a band does not hold row {} of the level", y0 + r as u64),
                    )
                })?;
                buf[r * cxu * es..(r * cxu + cols) * es].copy_from_slice(from);
            }
            array
                .store_chunk(&[t, c, z, gy, gx], ArrayBytes::from(buf))
                .map_err(|e| NgffError::write(self.dir.join(level.to_string()), e))
        })
    }
}

/// One plane of an [`ImageWriter`] written band by band ([`ImageWriter::plane_in_bands`]).
pub struct PlaneBands<'a> {
    writer: &'a ImageWriter,
    tcz: [u64; 3],
    /// The next full-resolution row expected.
    next: u64,
    /// Per level: the first row not stored yet, and the rows from it not stored yet.
    pending: Vec<(u64, Vec<u8>)>,
}

impl PlaneBands<'_> {
    /// Adds the next rows of the full-resolution plane (whole rows; every band but the last
    /// an even number of rows, so that each level's rows come from the same rows as a whole
    /// plane's would), storing every grid cell they complete at each level.
    pub fn push(&mut self, band: &[u8]) -> Result<()> {
        let w = self.writer;
        let es = w.spec.dtype.size();
        let s = w.spec.sizes;
        let row_bytes = usize::try_from(s.x).unwrap_or(usize::MAX) * es;
        let fail = |m: String| NgffError::write(&w.dir, m);
        if band.is_empty() || !band.len().is_multiple_of(row_bytes) {
            return Err(fail(format!(
                "a band of {} bytes is not whole rows of {row_bytes} bytes",
                band.len()
            )));
        }
        let rows = (band.len() / row_bytes) as u64;
        let unit = w.band_unit();
        if self.next + rows > s.y || !self.next.is_multiple_of(unit) {
            return Err(fail(format!(
                "rows {}..{} do not follow on in a plane of {} rows (bands but the last are multiples of {unit} rows)",
                self.next,
                self.next + rows,
                s.y
            )));
        }
        let mut current: std::borrow::Cow<'_, [u8]> = std::borrow::Cow::Borrowed(band);
        let mut current_rows = rows;
        for k in 0..w.levels.len() {
            let (array, ls, cell) = &w.levels[k];
            if k > 0 {
                // this level's rows of the band: every other row of the level above
                let prev = w.levels[k - 1].1;
                let rows_k = current_rows
                    .div_ceil(2)
                    .min(ls.y.saturating_sub(self.next >> k));
                current = std::borrow::Cow::Owned(downsample(
                    &current,
                    Sizes {
                        y: current_rows,
                        ..prev
                    },
                    Sizes { y: rows_k, ..*ls },
                    es,
                ));
                current_rows = rows_k;
            }
            let level_row = usize::try_from(ls.x).unwrap_or(usize::MAX) * es;
            let (first, held) = &mut self.pending[k];
            held.extend_from_slice(&current);
            let have = (held.len() / level_row.max(1)) as u64;
            let end = *first + have;
            // whole cells, or everything at the level's end
            let complete = if end >= ls.y {
                have
            } else {
                (end / cell.0 * cell.0).saturating_sub(*first)
            };
            if complete > 0 {
                let bytes = usize::try_from(complete).unwrap_or(usize::MAX) * level_row;
                w.store_rows(
                    array,
                    *ls,
                    *cell,
                    self.tcz,
                    (*first, complete),
                    &held[..bytes],
                    k,
                )?;
                held.drain(..bytes);
                *first += complete;
            }
        }
        self.next += rows;
        Ok(())
    }

    /// Checks that the whole plane was given.
    pub fn finish(self) -> Result<()> {
        let s = self.writer.spec.sizes;
        if self.next == s.y && self.pending.iter().all(|(_, h)| h.is_empty()) {
            Ok(())
        } else {
            Err(NgffError::write(
                &self.writer.dir,
                format!("a plane ended after {} of its {} rows", self.next, s.y),
            ))
        }
    }
}

/// 2× nearest-neighbour downsampling of one plane (labels stay labels).
fn downsample(plane: &[u8], from: Sizes, to: Sizes, es: usize) -> Vec<u8> {
    let (fw, tw, th) = (
        usize::try_from(from.x).unwrap_or(0),
        usize::try_from(to.x).unwrap_or(0),
        usize::try_from(to.y).unwrap_or(0),
    );
    let mut out = vec![0u8; tw * th * es];
    out.par_chunks_mut(tw * es)
        .enumerate()
        .for_each(|(y, row)| {
            let src_row = &plane[(2 * y) * fw * es..(2 * y + 1) * fw * es];
            for x in 0..tw {
                row[x * es..(x + 1) * es].copy_from_slice(&src_row[2 * x * es..(2 * x + 1) * es]);
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ImageReader;

    fn pattern(s: Sizes, t: u64, c: u64, z: u64) -> Vec<u8> {
        let mut v = Vec::with_capacity(usize::try_from(s.y * s.x * 2).unwrap());
        for y in 0..s.y {
            for x in 0..s.x {
                let val = u16::try_from((x + 3 * y + 7 * z + 11 * c + 13 * t) % 65521).unwrap();
                v.extend_from_slice(&val.to_ne_bytes());
            }
        }
        v
    }

    /// A plane written band by band is the plane written whole, at every level: bands of a
    /// few rows, of rows that are not whole chunks, and the plane's end not on a chunk.
    #[test]
    fn a_plane_written_in_bands_is_the_plane_written_whole_at_every_level() {
        let sizes = Sizes {
            t: 1,
            c: 1,
            z: 3,
            y: 70,
            x: 90,
        };
        for (version, shard) in [(NgffVersion::V04, None), (NgffVersion::V05, Some((64, 64)))] {
            let d = tempfile::tempdir().unwrap();
            let mut spec = ImageSpec::new("img", sizes, PixelType::Uint16, version);
            spec.chunk_yx = (16, 32);
            spec.shard_yx = shard;
            spec.levels = 3;
            let whole = d.path().join("whole.ome.zarr");
            let banded = d.path().join("banded.ome.zarr");
            let (st, w) = ImageWriter::create_store(&whole, spec.clone()).unwrap();
            let (sb, b) = ImageWriter::create_store(&banded, spec).unwrap();
            assert_eq!(b.band_unit(), 4);
            let row = usize::try_from(sizes.x * 2).unwrap();
            // z 0: bands of 4 rows; z 1: 12 rows; z 2: the whole plane as one band
            for (z, rows) in [(0u64, 4usize), (1, 12), (2, 70)] {
                let plane = pattern(sizes, 0, 0, z);
                w.write_plane(0, 0, z, &plane).unwrap();
                let mut p = b.plane_in_bands(0, 0, z);
                for band in plane.chunks(rows * row) {
                    p.push(band).unwrap();
                }
                p.finish().unwrap();
            }
            // a band that does not start on the unit is refused, naming the rows
            let mut p = b.plane_in_bands(0, 0, 0);
            p.push(&pattern(sizes, 0, 0, 0)[..3 * row]).unwrap();
            let e = p
                .push(&pattern(sizes, 0, 0, 0)[..4 * row])
                .unwrap_err()
                .to_string();
            assert!(e.contains("rows 3..7"), "{e}");
            st.commit().unwrap();
            sb.commit().unwrap();
            let (rw, rb) = (
                ImageReader::open(&whole).unwrap(),
                ImageReader::open(&banded).unwrap(),
            );
            for level in 0..3 {
                let (mut pw, mut pb) = (
                    rw.plane_reader(level, 1 << 20).unwrap(),
                    rb.plane_reader(level, 1 << 20).unwrap(),
                );
                let (mut bw, mut bb) = (vec![0u8; pw.plane_bytes()], vec![0u8; pb.plane_bytes()]);
                for z in 0..3 {
                    pw.read_plane(0, 0, z, &mut bw).unwrap();
                    pb.read_plane(0, 0, z, &mut bb).unwrap();
                    assert_eq!(bw, bb, "{version} level {level} z {z}");
                }
                assert_eq!(pb.missing_chunks, 0, "{version} level {level}");
            }
        }
    }

    #[test]
    fn images_round_trip_in_both_versions_with_pyramids_shards_and_edge_chunks() {
        let sizes = Sizes {
            t: 2,
            c: 3,
            z: 2,
            y: 70,
            x: 90,
        };
        for (version, shard) in [
            (NgffVersion::V04, None),
            (NgffVersion::V05, None),
            (NgffVersion::V05, Some((64, 64))),
        ] {
            let d = tempfile::tempdir().unwrap();
            let target = d.path().join("img.ome.zarr");
            let mut spec = ImageSpec::new("img", sizes, PixelType::Uint16, version);
            spec.chunk_yx = (32, 32);
            spec.shard_yx = shard;
            spec.levels = 3;
            spec.pixel_size_zyx = [0.5, 0.25, 0.25];
            let (staging, w) = ImageWriter::create_store(&target, spec).unwrap();
            for t in 0..2 {
                for c in 0..3 {
                    for z in 0..2 {
                        w.write_plane(t, c, z, &pattern(sizes, t, c, z)).unwrap();
                    }
                }
            }
            staging.commit().unwrap();
            let r = ImageReader::open(&target).unwrap();
            assert_eq!(r.sizes(), sizes);
            assert_eq!(r.levels.len(), 3);
            assert_eq!(r.version, version);
            assert!((r.physical_sizes().x.unwrap().0 - 0.25).abs() < 1e-12);
            let mut pr = r.plane_reader(0, 1 << 20).unwrap();
            let mut buf = vec![0u8; pr.plane_bytes()];
            for t in 0..2 {
                for c in 0..3 {
                    for z in 0..2 {
                        pr.read_plane(t, c, z, &mut buf).unwrap();
                        assert_eq!(buf, pattern(sizes, t, c, z), "{version} t{t} c{c} z{z}");
                    }
                }
            }
            assert_eq!(pr.missing_chunks, 0);
            // level 2 is nearest-downsampled by 4
            let mut l2 = r.plane_reader(2, 1 << 20).unwrap();
            let s2 = l2.sizes();
            assert_eq!((s2.y, s2.x), (18, 23));
            let mut b2 = vec![0u8; l2.plane_bytes()];
            l2.read_plane(1, 2, 1, &mut b2).unwrap();
            let full = pattern(sizes, 1, 2, 1);
            let at = |b: &[u8], w: u64, y: u64, x: u64| {
                let i = usize::try_from((y * w + x) * 2).unwrap();
                u16::from_ne_bytes([b[i], b[i + 1]])
            };
            assert_eq!(at(&b2, 23, 17, 22), at(&full, 90, 68, 88));
        }
    }
}
