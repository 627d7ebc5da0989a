//! Limits on what the readers of outside files allocate: TIFF pages, how far a compressed page
//! may claim to expand, and metadata files read whole (NGFF `.zattrs`/`zarr.json`, OME-XML
//! companions, a job's returned metadata).
//!
//! They are settings of the process (`max_tiff_pages`, `max_tiff_expansion`,
//! `max_metadata_bytes` in biomero-stage.toml), applied with [`set`] each time the settings are
//! loaded, and read by the readers deep inside the engine with [`current`], so that every
//! path that opens a file (inspect, plan, stage, keep) is held by the same figures without
//! threading them through each call.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// The limits the file readers apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// The most pages one TIFF image may have (planes: channels × z × t).
    pub tiff_pages: u64,
    /// How many times its stored size a compressed TIFF page may expand to.
    pub tiff_expansion: u64,
    /// The largest metadata file read whole, in bytes.
    pub metadata_bytes: u64,
}

impl ReadLimits {
    /// The defaults: 100,000 pages; 4096× (above any real codec's ratio on microscopy data:
    /// deflate peaks near 1,032:1, so a page that claims more is a lie); 64 MiB of metadata
    /// (the OME-XML of a 384-well plate of 9 fields is a few MB).
    pub const DEFAULT: ReadLimits = ReadLimits {
        tiff_pages: 100_000,
        tiff_expansion: 4096,
        metadata_bytes: 64 << 20,
    };
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

static TIFF_PAGES: AtomicU64 = AtomicU64::new(ReadLimits::DEFAULT.tiff_pages);
static TIFF_EXPANSION: AtomicU64 = AtomicU64::new(ReadLimits::DEFAULT.tiff_expansion);
static METADATA_BYTES: AtomicU64 = AtomicU64::new(ReadLimits::DEFAULT.metadata_bytes);

/// Makes `limits` the process's read limits (the settings just loaded).
pub fn set(limits: ReadLimits) {
    TIFF_PAGES.store(limits.tiff_pages.max(1), Ordering::Relaxed);
    TIFF_EXPANSION.store(limits.tiff_expansion.max(1), Ordering::Relaxed);
    METADATA_BYTES.store(limits.metadata_bytes.max(1), Ordering::Relaxed);
}

/// The process's read limits.
pub fn current() -> ReadLimits {
    ReadLimits {
        tiff_pages: TIFF_PAGES.load(Ordering::Relaxed),
        tiff_expansion: TIFF_EXPANSION.load(Ordering::Relaxed),
        metadata_bytes: METADATA_BYTES.load(Ordering::Relaxed),
    }
}

/// Why a metadata file was not read.
#[derive(Debug)]
pub enum MetadataReadError {
    /// The file cannot be read.
    Io(std::io::Error),
    /// The file is larger than `max_metadata_bytes`.
    TooLarge {
        /// Its size (at least; it may have grown while read).
        bytes: u64,
        /// The limit.
        max: u64,
    },
}

impl fmt::Display for MetadataReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetadataReadError::Io(e) => write!(f, "{e}"),
            MetadataReadError::TooLarge { bytes, max } => write!(
                f,
                "the metadata file is {bytes} bytes; metadata is read whole and may hold at most {max} bytes (max_metadata_bytes)"
            ),
        }
    }
}

impl std::error::Error for MetadataReadError {}

impl MetadataReadError {
    /// The I/O error, when it is one (for callers that tell "not found" apart).
    pub fn io(&self) -> Option<&std::io::Error> {
        match self {
            MetadataReadError::Io(e) => Some(e),
            MetadataReadError::TooLarge { .. } => None,
        }
    }
}

/// Reads a whole metadata file of at most [`current`]`().metadata_bytes`: its size is checked
/// before anything is allocated, and the read stops one byte past the limit (a file that grows
/// while it is read is refused too).
pub fn read_metadata(path: &Path) -> Result<Vec<u8>, MetadataReadError> {
    let max = current().metadata_bytes;
    let f = std::fs::File::open(path).map_err(MetadataReadError::Io)?;
    let len = f.metadata().map_err(MetadataReadError::Io)?.len();
    if len > max {
        return Err(MetadataReadError::TooLarge { bytes: len, max });
    }
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    f.take(max.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(MetadataReadError::Io)?;
    let read = u64::try_from(out.len()).unwrap_or(u64::MAX);
    if read > max {
        return Err(MetadataReadError::TooLarge { bytes: read, max });
    }
    Ok(out)
}

/// [`read_metadata`] as UTF-8 text.
pub fn read_metadata_text(path: &Path) -> Result<String, MetadataReadError> {
    let bytes = read_metadata(path)?;
    String::from_utf8(bytes)
        .map_err(|e| MetadataReadError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_read_up_to_its_limit_and_refused_above() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("zarr.json");
        std::fs::write(&p, vec![b'{'; 100]).unwrap();
        let before = current();
        assert_eq!(read_metadata(&p).unwrap().len(), 100);
        // the limit is a process-wide setting: every test of this crate that changes it
        // restores it, and no other test here reads metadata
        set(ReadLimits {
            metadata_bytes: 99,
            ..before
        });
        let refused = read_metadata(&p);
        set(before);
        let e = refused.unwrap_err();
        assert!(matches!(
            e,
            MetadataReadError::TooLarge {
                bytes: 100,
                max: 99
            }
        ));
        assert!(e.to_string().contains("max_metadata_bytes"), "{e}");
        assert!(
            read_metadata(&d.path().join("missing"))
                .unwrap_err()
                .io()
                .is_some()
        );
    }
}
