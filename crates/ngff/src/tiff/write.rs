//! Writing multi-page (Big)TIFF, one YX plane per page, streaming.
//!
//! Pages are written through the `tiff` crate's directory API: strip data is
//! written as it comes and each page's tags (strip offsets and counts, sample
//! format, the OME-XML on the first page) follow it. Uncompressed strips are
//! written straight from the caller's plane buffer; with deflate, the strips
//! of a page are compressed in parallel first (the crate's own encoder
//! compresses on one thread). BigTIFF is chosen when the file could pass 4 GiB.
//! The file is written under a temporary name and renamed when complete.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tiff::encoder::{TiffEncoder, TiffKind, TiffKindBig, TiffKindStandard};
use tiff::tags::Tag;

use crate::dtype::PixelType;
use crate::error::{NgffError, Result};

/// TIFF strip compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TiffCompression {
    /// Uncompressed (the default: fastest, what BIAFLOWS workflows read everywhere).
    #[default]
    None,
    /// zlib/deflate (Adobe deflate, tag 8), compressed in parallel.
    Deflate,
}

/// The geometry of the pages of one TIFF.
#[derive(Debug, Clone, PartialEq)]
pub struct TiffLayout {
    /// Page width.
    pub width: u32,
    /// Page height.
    pub height: u32,
    /// Samples per pixel (1; 3 or 4 for interleaved RGB(A)).
    pub samples_per_pixel: u16,
    /// Pixel type.
    pub dtype: PixelType,
    /// Number of pages.
    pub pages: u64,
    /// `ImageDescription` of the first page (OME-XML).
    pub description: String,
    /// Compression.
    pub compression: TiffCompression,
}

impl TiffLayout {
    /// Bytes of one page.
    pub fn page_bytes(&self) -> u64 {
        u64::from(self.width)
            * u64::from(self.height)
            * u64::from(self.samples_per_pixel)
            * self.dtype.size() as u64
    }

    fn row_bytes(&self) -> u64 {
        self.page_bytes() / u64::from(self.height).max(1)
    }

    fn strip_target(&self) -> u64 {
        match self.compression {
            TiffCompression::None => 8 << 20,
            TiffCompression::Deflate => 256 << 10,
        }
    }

    fn rows_per_strip(&self) -> u32 {
        let rows = self.strip_target() / self.row_bytes().max(1);
        u32::try_from(rows.clamp(1, u64::from(self.height))).unwrap_or(1)
    }

    /// Rows per strip when a page comes in bands of `band_rows`: a divisor of the band
    /// (so every strip but the page's last is whole) within the strip size target.
    fn rows_per_strip_of_band(&self, band_rows: u32) -> u32 {
        let most = self.rows_per_strip().max(1);
        if band_rows <= most {
            return band_rows.max(1);
        }
        (1..=most)
            .rev()
            .find(|d| band_rows.is_multiple_of(*d))
            .unwrap_or(1)
    }
}

/// A buffered file that reports the error of its final flush (which a plain
/// `BufWriter` drops silently when the encoder that owns it is dropped).
struct Sink {
    inner: BufWriter<File>,
    flush_error: Arc<Mutex<Option<std::io::Error>>>,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl Seek for Sink {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Err(e) = self.inner.flush()
            && let Ok(mut slot) = self.flush_error.lock()
        {
            *slot = Some(e);
        }
    }
}

enum Encoder {
    Standard(TiffEncoder<Sink, TiffKindStandard>),
    Big(TiffEncoder<Sink, TiffKindBig>),
}

/// A TIFF being written page by page.
pub struct TiffWriter {
    encoder: Option<Encoder>,
    layout: TiffLayout,
    tmp: PathBuf,
    target: PathBuf,
    pages_written: u64,
    flush_error: Arc<Mutex<Option<std::io::Error>>>,
}

impl std::fmt::Debug for TiffWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TiffWriter")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Leaves room for tags and the OME-XML below the 4 GiB limit of classic TIFF.
const CLASSIC_LIMIT: u64 = (4 << 30) - (64 << 20);

impl TiffWriter {
    /// Creates `target` (written as a temporary file until [`TiffWriter::finish`]).
    pub fn create(target: &Path, layout: TiffLayout, force_big: bool) -> Result<Self> {
        if target.exists() {
            return Err(NgffError::Exists {
                path: target.to_path_buf(),
            });
        }
        if layout.width == 0 || layout.height == 0 || layout.pages == 0 {
            return Err(NgffError::Tiff {
                path: target.to_path_buf(),
                message: "an empty image cannot be written as TIFF".into(),
            });
        }
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = target.with_file_name(format!(".{name}.partial-{}", std::process::id()));
        let file = File::create(&tmp).map_err(|e| NgffError::io(&tmp, e))?;
        let flush_error = Arc::new(Mutex::new(None));
        let writer = Sink {
            inner: BufWriter::with_capacity(1 << 20, file),
            flush_error: Arc::clone(&flush_error),
        };
        let big = force_big || layout.page_bytes() * layout.pages > CLASSIC_LIMIT;
        let tiff_err = |e: tiff::TiffError| NgffError::Tiff {
            path: tmp.clone(),
            message: e.to_string(),
        };
        let encoder = if big {
            Encoder::Big(TiffEncoder::new_big(writer).map_err(tiff_err)?)
        } else {
            Encoder::Standard(TiffEncoder::new(writer).map_err(tiff_err)?)
        };
        Ok(TiffWriter {
            encoder: Some(encoder),
            layout,
            tmp,
            target: target.to_path_buf(),
            pages_written: 0,
            flush_error,
        })
    }

    /// Whether this file is a BigTIFF.
    pub fn is_big(&self) -> bool {
        matches!(self.encoder, Some(Encoder::Big(_)))
    }

    /// Writes the next page (native-endian samples, rows top to bottom, samples interleaved).
    pub fn write_page(&mut self, data: &[u8]) -> Result<()> {
        if u64::try_from(data.len()).ok() != Some(self.layout.page_bytes()) {
            return Err(NgffError::Tiff {
                path: self.target.clone(),
                message: format!(
                    "page has {} bytes, expected {}",
                    data.len(),
                    self.layout.page_bytes()
                ),
            });
        }
        let rows = self.layout.rows_per_strip();
        let mut page = Some(data);
        self.write_page_with(rows, &mut || Ok(page.take()), &mut |_| {})
    }

    /// Writes the next page from bands of whole rows, so a page of any size is written with
    /// memory bounded by a band: `next_band` is called until the page has all its rows, and
    /// each band is handed to `done` once written (to be filled again). Every band but the
    /// page's last has `band_rows` rows.
    pub fn write_page_in_bands(
        &mut self,
        band_rows: u32,
        next_band: &mut dyn FnMut() -> Result<Option<Vec<u8>>>,
        done: &mut dyn FnMut(Vec<u8>),
    ) -> Result<()> {
        let rows = self.layout.rows_per_strip_of_band(band_rows);
        self.write_page_with(rows, next_band, done)
    }

    fn write_page_with<B: AsRef<[u8]>>(
        &mut self,
        rows_per_strip: u32,
        next_band: &mut dyn FnMut() -> Result<Option<B>>,
        done: &mut dyn FnMut(B),
    ) -> Result<()> {
        if self.pages_written >= self.layout.pages {
            return Err(NgffError::Tiff {
                path: self.target.clone(),
                message: format!("more than the {} pages announced", self.layout.pages),
            });
        }
        let first = self.pages_written == 0;
        let layout = self.layout.clone();
        let page = PageWrite {
            layout: &layout,
            first,
            rows_per_strip,
            path: &self.target,
        };
        match self.encoder.as_mut() {
            Some(Encoder::Standard(e)) => page.write(e, next_band, done)?,
            Some(Encoder::Big(e)) => page.write(e, next_band, done)?,
            None => {
                return Err(NgffError::Invalid {
                    message: "TIFF writer already finished".into(),
                });
            }
        }
        self.pages_written += 1;
        Ok(())
    }

    /// Flushes and renames the file into place.
    pub fn finish(mut self) -> Result<PathBuf> {
        if self.pages_written != self.layout.pages {
            return Err(NgffError::Tiff {
                path: self.target.clone(),
                message: format!(
                    "{} of {} pages written",
                    self.pages_written, self.layout.pages
                ),
            });
        }
        // dropping the encoder flushes the file; a failed flush is reported here
        drop(self.encoder.take());
        if let Some(e) = self.flush_error.lock().ok().and_then(|mut e| e.take()) {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(NgffError::io(&self.tmp, e));
        }
        std::fs::rename(&self.tmp, &self.target).map_err(|e| NgffError::io(&self.target, e))?;
        Ok(self.target.clone())
    }
}

impl Drop for TiffWriter {
    fn drop(&mut self) {
        if self.encoder.is_some() {
            self.encoder = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(bytes.len() / 2),
        flate2::Compression::new(6),
    );
    // writing into a Vec cannot fail
    let _ = e.write_all(bytes);
    e.finish().unwrap_or_default()
}

/// One page being written: its strips as its bands arrive, then its tags.
struct PageWrite<'a> {
    layout: &'a TiffLayout,
    first: bool,
    rows_per_strip: u32,
    path: &'a Path,
}

impl PageWrite<'_> {
    fn fail(&self, message: String) -> NgffError {
        NgffError::Tiff {
            path: self.path.to_path_buf(),
            message,
        }
    }

    fn write<K: TiffKind, B: AsRef<[u8]>>(
        &self,
        enc: &mut TiffEncoder<Sink, K>,
        next_band: &mut dyn FnMut() -> Result<Option<B>>,
        done: &mut dyn FnMut(B),
    ) -> Result<()> {
        let layout = self.layout;
        let s = |e: tiff::TiffError| self.fail(e.to_string());
        let height = u64::from(layout.height);
        let row_bytes = usize::try_from(layout.row_bytes())
            .unwrap_or(usize::MAX)
            .max(1);
        let rps = self.rows_per_strip.max(1) as usize;
        let mut dir = enc.image_directory().map_err(s)?;
        let mut offsets: Vec<K::OffsetType> = Vec::new();
        let mut counts: Vec<K::OffsetType> = Vec::new();
        let mut rows_done = 0u64;
        while rows_done < height {
            let band = next_band()?.ok_or_else(|| {
                self.fail(format!(
                    "the page ended after {rows_done} of its {height} rows"
                ))
            })?;
            let bytes = band.as_ref();
            let rows = (bytes.len() / row_bytes) as u64;
            if bytes.is_empty() || bytes.len() % row_bytes != 0 || rows_done + rows > height {
                return Err(self.fail(format!(
                    "a band of {} bytes is not whole rows of {row_bytes} bytes within the page's {} remaining rows",
                    bytes.len(),
                    height - rows_done
                )));
            }
            if rows_done + rows < height && !rows.is_multiple_of(rps as u64) {
                return Err(self.fail(format!(
                    "a band of {rows} rows does not split into strips of {rps} rows"
                )));
            }
            let strips: Vec<&[u8]> = bytes.chunks(rps * row_bytes).collect();
            let compressed: Option<Vec<Vec<u8>>> = match layout.compression {
                TiffCompression::None => None,
                TiffCompression::Deflate => Some(strips.par_iter().map(|s| deflate(s)).collect()),
            };
            for (i, strip) in strips.iter().enumerate() {
                let data: &[u8] = compressed.as_ref().map_or(strip, |c| c[i].as_slice());
                let off = dir.write_data(data).map_err(s)?;
                offsets.push(K::convert_offset(off).map_err(s)?);
                counts.push(K::convert_offset(data.len() as u64).map_err(s)?);
            }
            rows_done += rows;
            done(band);
        }
        let bits = u16::try_from(layout.dtype.size() * 8).unwrap_or(8);
        let spp = layout.samples_per_pixel;
        dir.write_tag(Tag::NewSubfileType, 0u32).map_err(s)?;
        dir.write_tag(Tag::ImageWidth, layout.width).map_err(s)?;
        dir.write_tag(Tag::ImageLength, layout.height).map_err(s)?;
        dir.write_tag(Tag::BitsPerSample, &vec![bits; usize::from(spp)][..])
            .map_err(s)?;
        let compression: u16 = match layout.compression {
            TiffCompression::None => 1,
            TiffCompression::Deflate => 8,
        };
        dir.write_tag(Tag::Compression, compression).map_err(s)?;
        dir.write_tag(
            Tag::PhotometricInterpretation,
            if spp >= 3 { 2u16 } else { 1u16 },
        )
        .map_err(s)?;
        if self.first {
            dir.write_tag(Tag::ImageDescription, layout.description.as_str())
                .map_err(s)?;
        }
        dir.write_tag(Tag::StripOffsets, K::convert_slice(&offsets))
            .map_err(s)?;
        dir.write_tag(Tag::SamplesPerPixel, spp).map_err(s)?;
        dir.write_tag(Tag::RowsPerStrip, self.rows_per_strip.max(1))
            .map_err(s)?;
        dir.write_tag(Tag::StripByteCounts, K::convert_slice(&counts))
            .map_err(s)?;
        dir.write_tag(Tag::PlanarConfiguration, 1u16).map_err(s)?;
        dir.write_tag(
            Tag::SampleFormat,
            &vec![layout.dtype.tiff_sample_format(); usize::from(spp)][..],
        )
        .map_err(s)?;
        if spp == 4 {
            dir.write_tag(Tag::ExtraSamples, 2u16).map_err(s)?;
        }
        dir.finish().map_err(s)
    }
}
