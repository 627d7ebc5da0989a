//! Reading TIFF and OME-TIFF page by page, with the axes their metadata gives.
//!
//! The meaning of the pages comes from, in order: OME-XML in the first
//! page's description (sizes, `DimensionOrder`, physical sizes, channel
//! names); tifffile's shaped description (`{"shape": [...], "axes": "CYX"}`);
//! an ImageJ hyperstack description (`channels=`, `slices=`, `frames=`);
//! otherwise each page is a channel (how biomero-converter reads a plain
//! multi-page TIFF). Interleaved RGB(A) samples become channels.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tiff::decoder::Decoder;
use tiff::tags::Tag;

use crate::axes::Sizes;
use crate::dtype::PixelType;
use crate::error::{NgffError, Result};
use crate::tiff::ome_xml;

/// What a TIFF holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TiffInfo {
    /// The file.
    pub path: PathBuf,
    /// Image name (OME-XML name, else the file stem).
    pub name: String,
    /// TCZYX sizes.
    pub sizes: Sizes,
    /// Pixel type.
    pub dtype: PixelType,
    /// Pages in the file (of the first series).
    pub pages: u64,
    /// Samples per pixel within a page (1, or 3/4 for interleaved RGB(A)).
    pub samples_per_pixel: u16,
    /// Page order, fastest first after XY: `ZCT`, `CZT`, …
    pub order: String,
    /// Physical sizes x, y, z in micrometres.
    pub physical_um: [Option<f64>; 3],
    /// Time step in seconds.
    pub time_step_s: Option<f64>,
    /// Channel names.
    pub channels: Vec<String>,
    /// Where the axes came from: `ome-xml`, `tifffile`, `imagej` or `pages-as-channels`.
    pub source: &'static str,
}

impl TiffInfo {
    /// (t, z, c) of the first plane in `page` (for interleaved RGB, c is 0 and the page holds all channels).
    pub fn page_position(&self, page: u64) -> (u64, u64, u64) {
        let s = self.sizes;
        let c_per_page = if self.samples_per_pixel > 1 { 1 } else { s.c };
        let mut rest = page;
        let (mut t, mut z, mut c) = (0, 0, 0);
        for axis in self.order.chars() {
            let n = match axis {
                'Z' => s.z,
                'C' => c_per_page,
                'T' => s.t,
                _ => 1,
            }
            .max(1);
            let v = rest % n;
            rest /= n;
            match axis {
                'Z' => z = v,
                'C' => c = v,
                'T' => t = v,
                _ => {}
            }
        }
        (t, z, c)
    }
}

fn tiff_err(path: &Path, e: impl std::fmt::Display) -> NgffError {
    NgffError::Tiff {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn open(path: &Path) -> Result<Decoder<BufReader<File>>> {
    let f = File::open(path).map_err(|e| NgffError::io(path, e))?;
    Decoder::new(BufReader::with_capacity(1 << 20, f))
        .map(|d| d.with_limits(tiff::decoder::Limits::unlimited()))
        .map_err(|e| tiff_err(path, format!("not a readable TIFF: {e}")))
}

/// The most pages one TIFF image may have (planes: channels × z × t).
pub const MAX_PAGES: u64 = 100_000;
/// How many times its stored size a compressed page may expand to: above any real codec's
/// ratio on microscopy data (deflate peaks near 1,032:1), so a page that claims more is a lie.
pub const MAX_EXPANSION: u64 = 4096;

/// Checks that page `page` (the decoder's current one) holds the data its size claims,
/// before anything is allocated for it: every strip or tile lies inside the file, an
/// uncompressed page stores all `page_bytes`, a compressed one at least 1/[`MAX_EXPANSION`].
fn check_page_data(
    d: &mut Decoder<BufReader<File>>,
    path: &Path,
    page: u64,
    page_bytes: u64,
    file_len: u64,
) -> Result<()> {
    let tags = |d: &mut Decoder<BufReader<File>>, tag: Tag| {
        d.find_tag_unsigned_vec::<u64>(tag)
            .map_err(|e| tiff_err(path, format!("page {page}: {e}")))
    };
    let (offsets, counts) = match tags(d, Tag::StripOffsets)? {
        Some(o) => (o, tags(d, Tag::StripByteCounts)?.unwrap_or_default()),
        None => (
            tags(d, Tag::TileOffsets)?.unwrap_or_default(),
            tags(d, Tag::TileByteCounts)?.unwrap_or_default(),
        ),
    };
    if offsets.is_empty() || offsets.len() != counts.len() {
        return Err(tiff_err(
            path,
            format!(
                "page {page}: its strip or tile offsets and byte counts do not match; the file is damaged"
            ),
        ));
    }
    let mut stored: u64 = 0;
    for (o, c) in offsets.iter().zip(&counts) {
        if o.saturating_add(*c) > file_len {
            return Err(tiff_err(
                path,
                format!(
                    "page {page}: its data at byte {o} (+{c}) lies beyond the end of the file ({file_len} bytes); the file is cut short"
                ),
            ));
        }
        stored = stored.saturating_add(*c);
    }
    let compression: u16 = d
        .find_tag_unsigned(Tag::Compression)
        .map_err(|e| tiff_err(path, format!("page {page}: {e}")))?
        .unwrap_or(1);
    let short = if compression == 1 {
        stored < page_bytes
    } else {
        stored.saturating_mul(MAX_EXPANSION) < page_bytes
    };
    if short {
        return Err(tiff_err(
            path,
            format!(
                "page {page}: the strip data is {stored} bytes, shorter than the {page_bytes} bytes the page claims (compression {compression}); the file is cut short or its tags are wrong"
            ),
        ));
    }
    Ok(())
}

fn stem(path: &Path) -> String {
    let n = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for ext in [".ome.tiff", ".ome.tif", ".tiff", ".tif"] {
        if let Some(s) = n.strip_suffix(ext) {
            return s.to_owned();
        }
    }
    n
}

/// Reads the metadata of a TIFF (walks the pages of the first series).
pub fn inspect(path: &Path) -> Result<TiffInfo> {
    let mut d = open(path)?;
    let (width, height) = d.dimensions().map_err(|e| tiff_err(path, e))?;
    let spp: u16 = d
        .find_tag_unsigned(Tag::SamplesPerPixel)
        .map_err(|e| tiff_err(path, e))?
        .unwrap_or(1);
    let bits: u16 = d
        .find_tag_unsigned_vec::<u16>(Tag::BitsPerSample)
        .map_err(|e| tiff_err(path, e))?
        .and_then(|v| v.first().copied())
        .unwrap_or(1);
    let format: u16 = d
        .find_tag_unsigned_vec::<u16>(Tag::SampleFormat)
        .map_err(|e| tiff_err(path, e))?
        .and_then(|v| v.first().copied())
        .unwrap_or(1);
    let dtype = PixelType::from_tiff(bits, format).ok_or_else(|| {
        tiff_err(path, format!("{bits}-bit samples of format {format} are not supported (use 8/16/32-bit integers or 32/64-bit floats)"))
    })?;
    let description = d
        .find_tag(Tag::ImageDescription)
        .ok()
        .flatten()
        .and_then(|v| v.into_string().ok())
        .unwrap_or_default();
    let file_len = std::fs::metadata(path)
        .map_err(|e| NgffError::io(path, e))?
        .len();
    let page_bytes = u64::from(width)
        .saturating_mul(u64::from(height))
        .saturating_mul(u64::try_from(dtype.size()).unwrap_or(u64::MAX))
        .saturating_mul(u64::from(spp.max(1)));
    check_page_data(&mut d, path, 0, page_bytes, file_len)?;
    let mut pages: u64 = 1;
    while d.more_images() {
        d.next_image().map_err(|e| tiff_err(path, e))?;
        let (w, h) = d.dimensions().map_err(|e| tiff_err(path, e))?;
        if (w, h) != (width, height) {
            break; // a thumbnail or another series: not part of this image
        }
        if pages >= MAX_PAGES {
            return Err(tiff_err(
                path,
                format!(
                    "has more than {MAX_PAGES} pages of {width}×{height}; an image of that many planes is not staged from one TIFF (split it, or convert it to OME-Zarr first)"
                ),
            ));
        }
        check_page_data(&mut d, path, pages, page_bytes, file_len)?;
        pages += 1;
    }
    let (y, x) = (u64::from(height), u64::from(width));
    let rgb = if spp > 1 { u64::from(spp) } else { 1 };
    let mut info = TiffInfo {
        path: path.to_path_buf(),
        name: stem(path),
        sizes: Sizes {
            t: 1,
            c: pages * rgb,
            z: 1,
            y,
            x,
        },
        dtype,
        pages,
        samples_per_pixel: spp,
        order: "CZT".into(),
        physical_um: [None, None, None],
        time_step_s: None,
        channels: Vec::new(),
        source: "pages-as-channels",
    };
    if let Some(ome) = ome_xml::parse(&description) {
        let s = ome.sizes;
        let per_page = if spp > 1 { u64::from(spp) } else { 1 };
        let expected = s.t * s.z * (s.c / per_page.max(1)).max(1);
        if s.y != y || s.x != x || expected > pages {
            return Err(tiff_err(
                path,
                format!(
                    "OME-XML says {}×{}×{}×{}×{} (TCZYX) but the file has {pages} pages of {y}×{x}",
                    s.t, s.c, s.z, s.y, s.x
                ),
            ));
        }
        info.sizes = s;
        info.order = ome.dimension_order.trim_start_matches("XY").to_owned();
        info.physical_um = ome.physical_um;
        info.time_step_s = ome.time_increment_s;
        info.channels = ome.channels;
        info.name = ome.name.filter(|n| !n.is_empty()).unwrap_or(info.name);
        info.pages = expected;
        info.source = "ome-xml";
    } else if let Some((sizes, order)) = tifffile_shape(&description, y, x, pages, spp) {
        info.sizes = sizes;
        info.order = order;
        info.source = "tifffile";
    } else if let Some(sizes) = imagej(&description, y, x, pages) {
        info.sizes = sizes;
        info.order = "CZT".into();
        info.source = "imagej";
    }
    Ok(info)
}

/// tifffile's `{"shape": [...], "axes": "..."}`.
fn tifffile_shape(desc: &str, y: u64, x: u64, pages: u64, spp: u16) -> Option<(Sizes, String)> {
    let v: serde_json::Value = serde_json::from_str(desc.trim()).ok()?;
    let shape: Vec<u64> = v
        .get("shape")?
        .as_array()?
        .iter()
        .filter_map(serde_json::Value::as_u64)
        .collect();
    let axes: String = match v.get("axes").and_then(|a| a.as_str()) {
        Some(a) => a.to_ascii_uppercase(),
        None => {
            // without axes: leading dimensions are pages (as channels), then YX(S)
            let lead = shape.len().checked_sub(if spp > 1 { 3 } else { 2 })?;
            let mut a = "Q".repeat(lead);
            a.push_str(if spp > 1 { "YXS" } else { "YX" });
            a
        }
    };
    if axes.len() != shape.len() {
        return None;
    }
    let mut s = Sizes {
        t: 1,
        c: 1,
        z: 1,
        y: 0,
        x: 0,
    };
    let mut page_axes = String::new();
    for (a, n) in axes.chars().zip(&shape) {
        match a {
            'T' => s.t *= n,
            'C' | 'S' | 'Q' | 'I' => s.c *= n,
            'Z' => s.z *= n,
            'Y' => s.y = *n,
            'X' => s.x = *n,
            _ => return None,
        }
        if matches!(a, 'T' | 'Z' | 'C' | 'Q' | 'I') {
            page_axes.push(match a {
                'Q' | 'I' => 'C',
                o => o,
            });
        }
    }
    if s.y != y || s.x != x {
        return None;
    }
    let per_page = if spp > 1 { u64::from(spp) } else { 1 };
    if s.t * s.z * (s.c / per_page) != pages {
        return None;
    }
    // page axes are slowest first; the order string is fastest first
    let mut order: String = page_axes.chars().rev().collect();
    for a in ['Z', 'C', 'T'] {
        if !order.contains(a) {
            order.push(a);
        }
    }
    Some((s, order))
}

/// An ImageJ hyperstack description: channel fastest, then slices, then frames.
fn imagej(desc: &str, y: u64, x: u64, pages: u64) -> Option<Sizes> {
    if !desc.starts_with("ImageJ=") {
        return None;
    }
    let get = |k: &str| {
        desc.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let s = Sizes {
        t: get("frames").unwrap_or(1),
        c: get("channels").unwrap_or(1),
        z: get("slices").unwrap_or(1),
        y,
        x,
    };
    (s.planes() == pages).then_some(s)
}

/// Reads pages in file order into a reused buffer.
pub struct TiffPages {
    decoder: Decoder<BufReader<File>>,
    path: PathBuf,
    next: u64,
    total: u64,
    page_bytes: usize,
}

impl TiffPages {
    /// Starts reading the pages of `info.path`.
    pub fn open(info: &TiffInfo) -> Result<Self> {
        let page_bytes = usize::try_from(info.sizes.y * info.sizes.x).unwrap_or(usize::MAX)
            * info.dtype.size()
            * usize::from(info.samples_per_pixel.max(1));
        Ok(TiffPages {
            decoder: open(&info.path)?,
            path: info.path.clone(),
            next: 0,
            total: info.pages,
            page_bytes,
        })
    }

    /// Bytes of one page.
    pub fn page_bytes(&self) -> usize {
        self.page_bytes
    }

    /// Reads the next page into `buf` (resized to one page); `None` after the last page.
    pub fn next_page(&mut self, buf: &mut Vec<u8>) -> Result<Option<u64>> {
        if self.next >= self.total {
            return Ok(None);
        }
        if self.next > 0 {
            self.decoder
                .next_image()
                .map_err(|e| tiff_err(&self.path, e))?;
        }
        buf.resize(self.page_bytes, 0);
        self.decoder
            .read_image_bytes(buf)
            .map_err(|e| tiff_err(&self.path, format!("page {}: {e}", self.next)))?;
        self.next += 1;
        Ok(Some(self.next - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian classic TIFF of one page: `entries` as (tag, type, value) with one value each.
    fn tiff_bytes(entries: &[(u16, u16, u32)], trailing: usize) -> Vec<u8> {
        let mut b = b"II*\0".to_vec();
        b.extend_from_slice(&8u32.to_le_bytes());
        b.extend_from_slice(&u16::try_from(entries.len()).unwrap().to_le_bytes());
        for (tag, ty, value) in entries {
            b.extend_from_slice(&tag.to_le_bytes());
            b.extend_from_slice(&ty.to_le_bytes());
            b.extend_from_slice(&1u32.to_le_bytes());
            b.extend_from_slice(&value.to_le_bytes());
        }
        b.extend_from_slice(&0u32.to_le_bytes());
        b.resize(b.len() + trailing, 7);
        b
    }

    /// Files whose tags claim more pixels than they hold are refused by their metadata,
    /// before a page is allocated, with what is short and by how much.
    #[test]
    fn a_tiff_that_claims_more_than_it_holds_is_refused_before_reading() {
        const LONG: u16 = 4;
        const SHORT: u16 = 3;
        let d = tempfile::tempdir().unwrap();
        let page = |w: u32, h: u32, offset: u32, count: u32, compression: u32| {
            vec![
                (256, LONG, w),
                (257, LONG, h),
                (258, SHORT, 16),
                (259, SHORT, compression),
                (262, SHORT, 1),
                (273, LONG, offset),
                (277, SHORT, 1),
                (278, LONG, h),
                (279, LONG, count),
            ]
        };
        let cases = [
            // 130 bytes that declare 60000² 16-bit pixels (7.2 GB), uncompressed
            (
                "huge.tif",
                page(60_000, 60_000, 122, 8, 1),
                8,
                "shorter than the 7200000000 bytes",
            ),
            // the same, "compressed" with deflate: still far beyond any real ratio
            (
                "deflate.tif",
                page(60_000, 60_000, 122, 8, 8),
                8,
                "compression 8",
            ),
            // a strip that starts inside the file and runs past its end
            (
                "cut.tif",
                page(4, 4, 122, 32, 1),
                8,
                "beyond the end of the file",
            ),
        ];
        for (name, entries, trailing, words) in cases {
            let p = d.path().join(name);
            std::fs::write(&p, tiff_bytes(&entries, trailing)).unwrap();
            assert!(std::fs::metadata(&p).unwrap().len() < 200);
            let e = inspect(&p).unwrap_err().to_string();
            assert!(e.contains(name) && e.contains(words), "{name}: {e}");
        }
        // a page that holds exactly what it claims is read
        let p = d.path().join("ok.tif");
        std::fs::write(&p, tiff_bytes(&page(4, 2, 122, 16, 1), 16)).unwrap();
        let info = inspect(&p).unwrap();
        assert_eq!((info.sizes.y, info.sizes.x, info.pages), (2, 4, 1));
    }

    #[test]
    fn tifffile_and_imagej_descriptions_give_axes() {
        let (s, order) =
            tifffile_shape(r#"{"shape": [2, 3, 64, 32], "axes": "ZCYX"}"#, 64, 32, 6, 1).unwrap();
        assert_eq!((s.t, s.c, s.z), (1, 3, 2));
        assert_eq!(order, "CZT");
        let (s, _) = tifffile_shape(r#"{"shape": [2, 64, 32]}"#, 64, 32, 2, 1).unwrap();
        assert_eq!(s.c, 2);
        assert!(tifffile_shape(r#"{"shape": [3, 64, 32]}"#, 64, 32, 2, 1).is_none());
        let s = imagej(
            "ImageJ=1.53\nimages=12\nchannels=2\nslices=3\nframes=2\n",
            8,
            8,
            12,
        )
        .unwrap();
        assert_eq!((s.t, s.c, s.z), (2, 2, 3));
    }

    #[test]
    fn page_positions_follow_the_order() {
        let info = TiffInfo {
            path: PathBuf::new(),
            name: String::new(),
            sizes: Sizes {
                t: 2,
                c: 3,
                z: 4,
                y: 1,
                x: 1,
            },
            dtype: PixelType::Uint8,
            pages: 24,
            samples_per_pixel: 1,
            order: "ZCT".into(),
            physical_um: [None; 3],
            time_step_s: None,
            channels: vec![],
            source: "ome-xml",
        };
        assert_eq!(info.page_position(0), (0, 0, 0));
        assert_eq!(info.page_position(1), (0, 1, 0));
        assert_eq!(info.page_position(4), (0, 0, 1));
        assert_eq!(info.page_position(12), (1, 0, 0));
    }
}
