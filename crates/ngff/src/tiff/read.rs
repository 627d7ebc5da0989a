//! Reading TIFF and OME-TIFF page by page, with the axes their metadata gives.
//!
//! The meaning of the pages comes from, in order: OME-XML in the first
//! page's description (sizes, `DimensionOrder`, physical sizes, channel
//! names); tifffile's shaped description (`{"shape": [...], "axes": "CYX"}`);
//! an ImageJ hyperstack description (`channels=`, `slices=`, `frames=`);
//! otherwise each page is a channel (how biomero-converter reads a plain
//! multi-page TIFF). Interleaved RGB(A) samples become channels.
//!
//! An OME-TIFF may hold several images (series) and may spread an image over
//! several files of a fileset (`TiffData` naming another file by its UUID's
//! `FileName`, or a `BinaryOnly` file pointing at the file with the metadata):
//! [`inspect_series`] reads one series, resolving every plane to its file and
//! page, and checks each page against the file before anything is allocated.
//! Another file of a fileset must be a plain name in the same folder, and must
//! really be there (a symbolic link out of the folder is refused).

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
    /// Pages of this image (planes; for interleaved RGB, planes of all channels).
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
    /// Channel colours (`RRGGBB`), per channel, where the file gives them.
    pub colors: Vec<Option<String>>,
    /// Display windows (start, end), per channel, where the file gives them.
    pub windows: Vec<Option<(f64, f64)>>,
    /// Where the axes came from: `ome-xml`, `tifffile`, `imagej` or `pages-as-channels`.
    pub source: &'static str,
    /// The series (OME-XML image) this is: 0 for the first.
    pub series: usize,
    /// How many series the file holds.
    pub series_count: usize,
    /// The files holding the pages: `path` first when it holds any, then the other files
    /// of a multi-file fileset.
    pub files: Vec<PathBuf>,
    /// Where each page is, in page order ([`TiffInfo::page_position`]): an index into
    /// `files` and the page (IFD) within that file.
    pub planes: Vec<(u32, u32)>,
}

impl TiffInfo {
    /// Whether the file holds exactly this image and nothing else, its pages in order:
    /// the file can be handed on as it is.
    pub fn is_whole_file(&self) -> bool {
        self.series_count == 1
            && self.files.len() == 1
            && self.files[0] == self.path
            && self
                .planes
                .iter()
                .enumerate()
                .all(|(i, (f, ifd))| *f == 0 && usize::try_from(*ifd).is_ok_and(|p| p == i))
    }

    /// The page holding plane (t, z, c) (for interleaved RGB, the page of all channels at
    /// (t, z); `c` is ignored), the inverse of [`TiffInfo::page_position`].
    pub fn page_index(&self, t: u64, z: u64, c: u64) -> u64 {
        let s = self.sizes;
        let c_per_page = if self.samples_per_pixel > 1 { 1 } else { s.c };
        let (mut idx, mut stride) = (0, 1);
        for axis in self.order.chars() {
            let (v, n) = match axis {
                'Z' => (z, s.z),
                'C' => (if c_per_page == 1 { 0 } else { c }, c_per_page),
                'T' => (t, s.t),
                _ => continue,
            };
            idx += v * stride;
            stride *= n.max(1);
        }
        idx
    }

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
    let mut message = e.to_string();
    // the decoder's words for reading past the end of the file (std's `UnexpectedEof`)
    if message.contains("decoder limits exceeded") {
        message.push_str(&format!(
            ": a tag's value is larger than the file or than max_metadata_bytes ({} bytes) allows; if the file is genuine, raise max_metadata_bytes in biomero-stage.toml",
            stage_common::limits::current().metadata_bytes
        ));
    }
    if message.contains("failed to fill whole buffer") {
        message.push_str(
            ": the file ends before its own directories or data do; it is cut short (a copy or transfer that did not finish)",
        );
    }
    NgffError::Tiff {
        path: path.to_path_buf(),
        message,
    }
}

/// The `tiff` decoder's bound on what it allocates for one tag's value: a string of at most
/// this many bytes, a list of at most this many bytes of its `Value`s (32 bytes each). A tag
/// cannot hold more values than the file has bytes, and its value is metadata read whole, so
/// the bound is the smaller of `max_metadata_bytes` and 32 × the file's length: a 130-byte
/// file that declares a tag of 10⁹ values gets an error, not a 32 GB allocation. (The
/// decoder's own `ifd_value_size` limit is not enforced by tiff 0.11; this one is.)
fn tag_value_bound(file_len: u64) -> usize {
    let metadata = stage_common::limits::current().metadata_bytes;
    usize::try_from(metadata.min(file_len.saturating_mul(32))).unwrap_or(usize::MAX)
}

fn open(path: &Path) -> Result<Decoder<BufReader<File>>> {
    let f = File::open(path).map_err(|e| NgffError::io(path, e))?;
    let len = f.metadata().map_err(|e| NgffError::io(path, e))?.len();
    Decoder::new(BufReader::with_capacity(1 << 20, f))
        .map(|d| {
            // pixels are read page by page into buffers sized from checked tags (the decoder
            // does not apply this bound to `read_image_bytes`); a tag's value (OME-XML, strip
            // offsets) is bounded like any metadata read whole
            let mut limits = tiff::decoder::Limits::unlimited();
            limits.decoding_buffer_size = tag_value_bound(len);
            limits.ifd_value_size = limits.decoding_buffer_size;
            d.with_limits(limits)
        })
        .map_err(|e| tiff_err(path, format!("not a readable TIFF: {e}")))
}

/// The most pages one TIFF image may have (planes: channels × z × t): `max_tiff_pages`.
fn max_pages() -> u64 {
    stage_common::limits::current().tiff_pages
}

/// Checks that page `page` (the decoder's current one) holds the data its size claims,
/// before anything is allocated for it: every strip or tile lies inside the file, an
/// uncompressed page stores all `page_bytes`, a compressed one at least 1/`max_tiff_expansion`
/// of them (above any real codec's ratio on microscopy data: deflate peaks near 1,032:1, so a
/// page that claims more is a lie).
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
    let expansion = stage_common::limits::current().tiff_expansion;
    let short = if compression == 1 {
        stored < page_bytes
    } else {
        stored.saturating_mul(expansion) < page_bytes
    };
    if short {
        return Err(tiff_err(
            path,
            format!(
                "page {page}: the strip data is {stored} bytes, shorter than the {page_bytes} bytes the page claims (compression {compression}{}); the file is cut short or its tags are wrong",
                if compression == 1 {
                    String::new()
                } else {
                    format!(", which expands at most {expansion}×: max_tiff_expansion")
                }
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

/// The pixel format of the decoder's current page: (width, height, samples per pixel, type).
fn page_format(
    d: &mut Decoder<BufReader<File>>,
    path: &Path,
) -> Result<(u32, u32, u16, PixelType)> {
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
    Ok((width, height, spp, dtype))
}

fn page_bytes_of(width: u32, height: u32, spp: u16, dtype: PixelType) -> u64 {
    u64::from(width)
        .saturating_mul(u64::from(height))
        .saturating_mul(u64::try_from(dtype.size()).unwrap_or(u64::MAX))
        .saturating_mul(u64::from(spp.max(1)))
}

fn file_len(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .map_err(|e| NgffError::io(path, e))?
        .len())
}

/// Another file of `of`'s fileset, named `name` in OME-XML: a plain name in the same
/// folder, really there (not a link out of it).
fn sibling(of: &Path, name: &str) -> Result<PathBuf> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\\');
    if !plain {
        return Err(tiff_err(
            of,
            format!(
                "its OME-XML names the file `{name}`, which is not a plain file name in its folder; refusing to follow it"
            ),
        ));
    }
    let dir = of.parent().unwrap_or(Path::new("."));
    let p = dir.join(name);
    let real = std::fs::canonicalize(&p).map_err(|e| {
        tiff_err(
            of,
            format!(
                "its OME-XML names the file `{name}` of its fileset, which cannot be read: {e}"
            ),
        )
    })?;
    let real_dir = std::fs::canonicalize(dir).map_err(|e| NgffError::io(dir, e))?;
    if real.parent() != Some(real_dir.as_path()) {
        return Err(tiff_err(
            of,
            format!(
                "the file `{name}` of its fileset links to {}, outside its folder; refusing to follow it",
                real.display()
            ),
        ));
    }
    Ok(p)
}

/// Whether `p` is named as a TIFF (`.tif`, `.tiff`, any case; `.ome.tif` included).
pub fn is_tiff_path(p: &Path) -> bool {
    p.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("tif") || e.eq_ignore_ascii_case("tiff"))
}

/// Reads the metadata of a TIFF's first series.
pub fn inspect(path: &Path) -> Result<TiffInfo> {
    inspect_series(path, 0)
}

/// Reads the metadata of series `series` of a TIFF (the OME-XML image of that index; a
/// TIFF without OME-XML holds one), resolving each of its planes to a file and page and
/// checking every one of those pages.
pub fn inspect_series(path: &Path, series: usize) -> Result<TiffInfo> {
    let mut d = open(path)?;
    let description = d
        .find_tag(Tag::ImageDescription)
        .ok()
        .flatten()
        .and_then(|v| v.into_string().ok())
        .unwrap_or_default();
    let doc = match ome_xml::parse_document(&description) {
        Some(doc) if doc.images.is_empty() => match &doc.metadata_file {
            // a file of a fileset that holds only pixels: the metadata is elsewhere
            Some(companion) => {
                let c = sibling(path, companion)?;
                let xml = if is_tiff_path(&c) {
                    // the master file of the fileset: its first page's description
                    open(&c)?
                        .find_tag(Tag::ImageDescription)
                        .ok()
                        .flatten()
                        .and_then(|v| v.into_string().ok())
                        .unwrap_or_default()
                } else {
                    stage_common::limits::read_metadata_text(&c)
                        .map_err(|e| NgffError::metadata_read(&c, e))?
                };
                // the metadata names the master file's own planes without a FileName
                ome_xml::parse_document(&xml).map(|doc| (doc, Some(c)))
            }
            None => None,
        },
        Some(doc) => Some((doc, None)),
        None => None,
    };
    match doc {
        Some((doc, companion)) if !doc.images.is_empty() => {
            from_ome(path, &doc, companion.as_deref(), series)
        }
        _ if series > 0 => Err(tiff_err(
            path,
            format!(
                "holds a single image (it has no OME-XML series); series {series} is not in it"
            ),
        )),
        _ => plain(path, d, &description),
    }
}

/// A TIFF without usable OME-XML: pages of the first page's size, in order.
fn plain(path: &Path, mut d: Decoder<BufReader<File>>, description: &str) -> Result<TiffInfo> {
    let (width, height, spp, dtype) = page_format(&mut d, path)?;
    let len = file_len(path)?;
    let page_bytes = page_bytes_of(width, height, spp, dtype);
    check_page_data(&mut d, path, 0, page_bytes, len)?;
    let mut pages: u64 = 1;
    let mut more = false;
    while d.more_images() {
        d.next_image().map_err(|e| tiff_err(path, e))?;
        let (w, h) = d.dimensions().map_err(|e| tiff_err(path, e))?;
        if (w, h) != (width, height) {
            more = true; // a thumbnail or another series: not part of this image
            break;
        }
        if pages >= max_pages() {
            return Err(too_many_pages(path, width, height));
        }
        check_page_data(&mut d, path, pages, page_bytes, len)?;
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
        colors: Vec::new(),
        windows: Vec::new(),
        source: "pages-as-channels",
        series: 0,
        series_count: if more { 2 } else { 1 },
        files: vec![path.to_path_buf()],
        planes: (0..u32::try_from(pages).unwrap_or(u32::MAX))
            .map(|i| (0, i))
            .collect(),
    };
    if let Some((sizes, order)) = tifffile_shape(description, y, x, pages, spp) {
        info.sizes = sizes;
        info.order = order;
        info.source = "tifffile";
    } else if let Some(sizes) = imagej(description, y, x, pages) {
        info.sizes = sizes;
        info.order = "CZT".into();
        info.source = "imagej";
    }
    Ok(info)
}

fn too_many_pages(path: &Path, width: u32, height: u32) -> NgffError {
    tiff_err(
        path,
        format!(
            "has more than {} pages of {width}×{height} (max_tiff_pages); an image of that many planes is not staged from one TIFF (split it, or convert it to OME-Zarr first)",
            max_pages()
        ),
    )
}

/// Series `series` of an OME-XML document read from `path` (or from its companion file).
fn from_ome(
    path: &Path,
    doc: &ome_xml::OmeDocument,
    metadata_file: Option<&Path>,
    series: usize,
) -> Result<TiffInfo> {
    let img = doc.images.get(series).ok_or_else(|| {
        tiff_err(
            path,
            format!(
                "holds {} series (0 to {}); series {series} is not in it",
                doc.images.len(),
                doc.images.len() - 1
            ),
        )
    })?;
    let px = &img.pixels;
    let s = px.sizes;
    let per_page = u64::from(px.samples_per_pixel.max(1));
    let c_pages = (s.c / per_page).max(1);
    let expected = s.t.saturating_mul(s.z).saturating_mul(c_pages);
    if expected > max_pages() {
        return Err(too_many_pages(
            path,
            u32::try_from(s.x).unwrap_or(u32::MAX),
            u32::try_from(s.y).unwrap_or(u32::MAX),
        ));
    }
    let order = px.dimension_order.trim_start_matches("XY").to_owned();
    // a plane's page index in the dimension order, fastest axis first
    let index_of = |(z, c, t): (u64, u64, u64)| -> Option<u64> {
        let mut idx = 0;
        let mut stride = 1;
        for axis in order.chars() {
            let (v, n) = match axis {
                'Z' => (z, s.z),
                'C' => (c, c_pages),
                'T' => (t, s.t),
                _ => continue,
            };
            if v >= n.max(1) {
                return None;
            }
            idx += v * stride;
            stride *= n.max(1);
        }
        Some(idx)
    };
    let mut files: Vec<PathBuf> = Vec::new();
    let mut file_index = |f: PathBuf| -> u32 {
        let i = files.iter().position(|x| *x == f).unwrap_or_else(|| {
            files.push(f);
            files.len() - 1
        });
        u32::try_from(i).unwrap_or(u32::MAX)
    };
    let total = usize::try_from(expected).unwrap_or(usize::MAX);
    let mut planes: Vec<Option<(u32, u32)>> = vec![None; total];
    // a plane without a FileName is in the file the metadata came from
    let holder = metadata_file.unwrap_or(path);
    let own_file = |name: Option<&String>| -> Result<PathBuf> {
        match name {
            Some(n)
                if path
                    .file_name()
                    .is_some_and(|f| f.to_string_lossy() == n.as_str()) =>
            {
                Ok(path.to_path_buf())
            }
            Some(n) => sibling(path, n),
            None if is_tiff_path(holder) => Ok(holder.to_path_buf()),
            None => Err(tiff_err(
                path,
                "its fileset's metadata does not say which file holds a plane (TiffData without a FileName)",
            )),
        }
    };
    if img.tiff_data.is_empty() {
        let f = file_index(own_file(None)?);
        for (k, p) in planes.iter_mut().enumerate() {
            *p = Some((f, u32::try_from(k).unwrap_or(u32::MAX)));
        }
    }
    for block in &img.tiff_data {
        let (z, c, t) = block.first;
        let start = index_of((z, c, t)).ok_or_else(|| {
            tiff_err(
                path,
                format!("series {series}: a TiffData block starts at z={z} c={c} t={t}, outside the image"),
            )
        })?;
        let count = block
            .plane_count
            .unwrap_or(if block.has_ifd { 1 } else { expected - start });
        let f = file_index(own_file(block.file_name.as_ref())?);
        for i in 0..count {
            let k = usize::try_from(start + i).unwrap_or(usize::MAX);
            let ifd = u32::try_from(block.ifd + i).map_err(|_| {
                tiff_err(
                    path,
                    format!("series {series}: a page index beyond any TIFF"),
                )
            })?;
            match planes.get_mut(k) {
                Some(slot) => *slot = Some((f, ifd)),
                None => {
                    return Err(tiff_err(
                        path,
                        format!(
                            "series {series}: its TiffData blocks describe more than the {expected} planes of the image"
                        ),
                    ));
                }
            }
        }
    }
    let planes: Vec<(u32, u32)> = planes
        .into_iter()
        .enumerate()
        .map(|(k, p)| {
            p.ok_or_else(|| {
                tiff_err(
                    path,
                    format!("series {series}: plane {k} of {expected} is stored in none of its fileset's files"),
                )
            })
        })
        .collect::<Result<_>>()?;
    let (width, height, spp, dtype) = check_planes(path, &files, &planes, px.dtype)?;
    if (u64::from(width), u64::from(height)) != (s.x, s.y) || u64::from(spp.max(1)) != per_page {
        return Err(tiff_err(
            path,
            format!(
                "OME-XML says series {series} is {}×{}×{}×{}×{} (TCZYX) but its pages are {height}×{width} with {spp} sample(s) per pixel",
                s.t, s.c, s.z, s.y, s.x
            ),
        ));
    }
    Ok(TiffInfo {
        path: path.to_path_buf(),
        name: px
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| stem(path)),
        sizes: s,
        dtype,
        pages: expected,
        samples_per_pixel: spp,
        order,
        physical_um: px.physical_um,
        time_step_s: px.time_increment_s,
        channels: px.channels.clone(),
        colors: px.colors.clone(),
        windows: px.windows.clone(),
        source: "ome-xml",
        series,
        series_count: doc.images.len(),
        files,
        planes,
    })
}

/// Checks every page `planes` names: it exists, has the first page's size, samples and
/// type, and holds the data it claims. Returns that format.
fn check_planes(
    path: &Path,
    files: &[PathBuf],
    planes: &[(u32, u32)],
    declared: Option<PixelType>,
) -> Result<(u32, u32, u16, PixelType)> {
    let mut format: Option<(u32, u32, u16, PixelType)> = None;
    for (fi, file) in files.iter().enumerate() {
        let mut d = open(file)?;
        let len = file_len(file)?;
        for (k, (_, ifd)) in planes
            .iter()
            .enumerate()
            .filter(|(_, (f, _))| usize::try_from(*f).is_ok_and(|f| f == fi))
        {
            let page = usize::try_from(*ifd).unwrap_or(usize::MAX);
            d.seek_to_image(page).map_err(|e| {
                tiff_err(
                    file,
                    format!("plane {k} is said to be page {ifd}, which the file does not have ({e}); the fileset is incomplete or damaged"),
                )
            })?;
            let f = page_format(&mut d, file)?;
            match format {
                None => {
                    if let Some(t) = declared
                        && t != f.3
                    {
                        return Err(tiff_err(
                            path,
                            format!("OME-XML says {} pixels, but its pages hold {}", t, f.3),
                        ));
                    }
                    format = Some(f);
                }
                Some(first) if first != f => {
                    return Err(tiff_err(
                        file,
                        format!(
                            "page {ifd} is {}×{} {} with {} sample(s), unlike the image's other pages ({}×{} {} with {})",
                            f.1, f.0, f.3, f.2, first.1, first.0, first.3, first.2
                        ),
                    ));
                }
                Some(_) => {}
            }
            check_page_data(
                &mut d,
                file,
                u64::from(*ifd),
                page_bytes_of(f.0, f.1, f.2, f.3),
                len,
            )?;
        }
    }
    format.ok_or_else(|| tiff_err(path, "the image has no planes"))
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

/// How many files of a fileset [`TiffPages`] keeps open at once.
const OPEN_FILES: usize = 16;

/// Reads an image's pages in page order (across the files of its fileset) into a reused buffer.
pub struct TiffPages {
    files: Vec<PathBuf>,
    planes: Vec<(u32, u32)>,
    open: std::collections::HashMap<u32, Decoder<BufReader<File>>>,
    next: u64,
    page_bytes: usize,
}

impl TiffPages {
    /// Starts reading the pages of `info`.
    pub fn open(info: &TiffInfo) -> Result<Self> {
        let page_bytes = usize::try_from(info.sizes.y * info.sizes.x).unwrap_or(usize::MAX)
            * info.dtype.size()
            * usize::from(info.samples_per_pixel.max(1));
        Ok(TiffPages {
            files: info.files.clone(),
            planes: info.planes.clone(),
            open: std::collections::HashMap::new(),
            next: 0,
            page_bytes,
        })
    }

    /// Bytes of one page.
    pub fn page_bytes(&self) -> usize {
        self.page_bytes
    }

    /// Reads the next page into `buf` (resized to one page); `None` after the last page.
    pub fn next_page(&mut self, buf: &mut Vec<u8>) -> Result<Option<u64>> {
        let k = self.next;
        if usize::try_from(k).map_or(true, |k| k >= self.planes.len()) {
            return Ok(None);
        }
        self.read_page(k, buf)?;
        self.next += 1;
        Ok(Some(k))
    }

    /// Reads page `k` (in page order) into `buf` (resized to one page).
    pub fn read_page(&mut self, k: u64, buf: &mut Vec<u8>) -> Result<()> {
        let page_bytes = self.page_bytes;
        let (d, path, ifd) = self.at_page(k)?;
        buf.resize(page_bytes, 0);
        d.read_image_bytes(buf)
            .map_err(|e| tiff_err(&path, format!("page {ifd}: {e}")))
    }

    /// Reads rows `y0 .. y0 + rows` of page `k` into `buf` (resized to them), decoding only
    /// the strips or tiles that hold them: memory follows the band, not the page. For pages
    /// of one sample per pixel; `row_bytes` is one row of the page. A band that starts and
    /// ends on the page's strip (or tile row) boundaries decodes each strip once
    /// ([`TiffPages::band_rows`]).
    pub fn read_rows(
        &mut self,
        k: u64,
        y0: u32,
        rows: u32,
        row_bytes: usize,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        if rows == 0 {
            buf.clear();
            return Ok(());
        }
        let (d, path, ifd) = self.at_page(k)?;
        let fail = |e: tiff::TiffError| tiff_err(&path, format!("page {ifd}: {e}"));
        let (width, height) = d.dimensions().map_err(fail)?;
        if y0.checked_add(rows).is_none_or(|end| end > height) || row_bytes == 0 {
            return Err(tiff_err(
                &path,
                format!(
                    "page {ifd}: rows {y0}..{} are not in the page",
                    u64::from(y0) + u64::from(rows)
                ),
            ));
        }
        let px = row_bytes / width.max(1) as usize;
        buf.resize(rows as usize * row_bytes, 0);
        let (cw, ch) = d.chunk_dimensions();
        let (cw, ch) = (cw.max(1), ch.max(1));
        let across = width.div_ceil(cw);
        let mut chunk = Vec::new();
        for chunk_row in y0 / ch..=(y0 + rows - 1) / ch {
            for col in 0..across {
                let index = chunk_row * across + col;
                // the layout first: it fails on a chunk the page does not have, where the
                // data dimensions would panic
                let layout = d.image_chunk_buffer_layout(index).map_err(fail)?;
                let (w, h) = d.chunk_data_dimensions(index);
                if (u64::from(col) * u64::from(cw) + u64::from(w)) * px as u64 > row_bytes as u64 {
                    return Err(tiff_err(
                        &path,
                        format!("page {ifd}: chunk {index} reaches past the page's width"),
                    ));
                }
                let top = chunk_row * ch;
                // a whole strip inside the band is decoded in place, without a copy
                if across == 1 && top >= y0 && top + h <= y0 + rows && w as usize * px == row_bytes
                {
                    let dst = (top - y0) as usize * row_bytes;
                    if let Some(into) = buf.get_mut(dst..dst + layout.len) {
                        d.read_chunk_bytes(index, into).map_err(fail)?;
                        continue;
                    }
                }
                chunk.resize(layout.len, 0);
                d.read_chunk_bytes(index, &mut chunk).map_err(fail)?;
                // the rows of this chunk inside the band, at the chunk's columns
                let (from, to) = (y0.max(top), (y0 + rows).min(top + h));
                let (x0, line) = (col as usize * cw as usize * px, w as usize * px);
                for y in from..to {
                    let src = (y - top) as usize * line;
                    let dst = (y - y0) as usize * row_bytes + x0;
                    match (chunk.get(src..src + line), buf.get_mut(dst..dst + line)) {
                        (Some(from), Some(into)) => into.copy_from_slice(from),
                        _ => {
                            return Err(tiff_err(
                                &path,
                                format!("page {ifd}: chunk {index} is shorter than its rows"),
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The rows a band of about `band_bytes` holds for page `k`: whole strips (or tile rows),
    /// at least one.
    pub fn band_rows(&mut self, k: u64, row_bytes: usize, band_bytes: usize) -> Result<u32> {
        let (d, _, _) = self.at_page(k)?;
        let (_, ch) = d.chunk_dimensions();
        let ch = u64::from(ch.max(1));
        let per_band = (band_bytes as u64 / (ch * row_bytes as u64).max(1)).max(1);
        Ok(u32::try_from(ch * per_band).unwrap_or(u32::MAX))
    }

    /// The decoder of page `k`, at that page; its file and IFD.
    fn at_page(&mut self, k: u64) -> Result<(&mut Decoder<BufReader<File>>, PathBuf, u32)> {
        let Some(&(file, ifd)) = usize::try_from(k).ok().and_then(|k| self.planes.get(k)) else {
            return Err(tiff_err(
                self.files.first().map_or(Path::new("?"), PathBuf::as_path),
                format!("page {k} is not part of the image"),
            ));
        };
        let path = self
            .files
            .get(usize::try_from(file).unwrap_or(usize::MAX))
            .cloned()
            .ok_or_else(|| tiff_err(Path::new("?"), format!("page {k} names no file")))?;
        if !self.open.contains_key(&file) {
            if self.open.len() >= OPEN_FILES {
                self.open.clear();
            }
            self.open.insert(file, open(&path)?);
        }
        let Some(d) = self.open.get_mut(&file) else {
            return Err(tiff_err(&path, "the file could not be kept open"));
        };
        d.seek_to_image(usize::try_from(ifd).unwrap_or(usize::MAX))
            .map_err(|e| tiff_err(&path, format!("page {ifd}: {e}")))?;
        Ok((d, path, ifd))
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

    /// A tag whose value claims more values than the file has bytes (found by AFL++: the
    /// decoder reserved 37–137 GB for them and the process aborted) is an error naming the
    /// setting, whatever the tag's type, and nothing that size is allocated.
    #[test]
    fn a_tag_that_claims_more_values_than_the_file_holds_is_refused_without_allocating_them() {
        const ASCII: u16 = 2;
        const SHORT: u16 = 3;
        const LONG: u16 = 4;
        let d = tempfile::tempdir().unwrap();
        for (tag, ty) in [
            (270u16, ASCII),
            (270, LONG),
            (270, SHORT),
            (273, LONG),
            (258, SHORT),
        ] {
            let mut b = tiff_bytes(
                &[
                    (256, LONG, 4),
                    (257, LONG, 2),
                    (258, SHORT, 16),
                    (259, SHORT, 1),
                    (262, SHORT, 1),
                    (273, LONG, 200),
                    (277, SHORT, 1),
                    (278, LONG, 2),
                    (279, LONG, 16),
                    (270, ASCII, 0),
                ],
                64,
            );
            // the entry of `tag`: a billion values, stored at offset 8 (inside the file)
            let at = (0..10)
                .map(|i| 10 + i * 12)
                .find(|&o| u16::from_le_bytes([b[o], b[o + 1]]) == tag)
                .unwrap();
            b[at + 2..at + 4].copy_from_slice(&ty.to_le_bytes());
            b[at + 4..at + 8].copy_from_slice(&1_000_000_000u32.to_le_bytes());
            b[at + 8..at + 12].copy_from_slice(&8u32.to_le_bytes());
            let p = d.path().join(format!("tag-{tag}-{ty}.tif"));
            std::fs::write(&p, &b).unwrap();
            // an error or a file read without that tag's value: never an abort
            if let Err(e) = inspect(&p).and_then(|info| {
                let mut pages = TiffPages::open(&info)?;
                pages.next_page(&mut Vec::new())
            }) {
                let e = e.to_string();
                assert!(e.contains(&format!("tag-{tag}-{ty}.tif")), "{tag}: {e}");
            }
        }
        assert!(tag_value_bound(130) <= 130 * 32);
        assert!(tag_value_bound(u64::MAX) <= 64 << 20);
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
            colors: vec![],
            windows: vec![],
            source: "ome-xml",
            series: 0,
            series_count: 1,
            files: vec![],
            planes: vec![],
        };
        assert_eq!(info.page_position(0), (0, 0, 0));
        assert_eq!(info.page_position(1), (0, 1, 0));
        assert_eq!(info.page_position(4), (0, 0, 1));
        assert_eq!(info.page_position(12), (1, 0, 0));
    }
}
