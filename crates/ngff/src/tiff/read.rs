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
    let mut pages: u64 = 1;
    while d.more_images() {
        d.next_image().map_err(|e| tiff_err(path, e))?;
        let (w, h) = d.dimensions().map_err(|e| tiff_err(path, e))?;
        if (w, h) != (width, height) {
            break; // a thumbnail or another series: not part of this image
        }
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
