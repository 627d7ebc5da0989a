//! Errors of the data engine.
//!
//! Every error names the store (or file) and the node inside it, says what is
//! wrong in terms a facility admin recognises ("level `2` is listed in
//! multiscales but has no array on disk"), and, where there is one, what to do.

use std::path::PathBuf;

/// Why an OME-Zarr or TIFF could not be read, written or converted.
#[derive(Debug, thiserror::Error)]
pub enum NgffError {
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The path is not an OME-Zarr node (no `.zattrs`/`.zgroup`/`zarr.json`).
    #[error("{}: not a Zarr group or array (no .zgroup, .zattrs or zarr.json): {hint}", path.display())]
    NotZarr {
        /// The path.
        path: PathBuf,
        /// What to check.
        hint: String,
    },
    /// Metadata that cannot be understood.
    #[error("{}: invalid metadata: {message}", path.display())]
    Metadata {
        /// The node.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A level listed in `multiscales` that is not on disk (BIOMERO's known failure).
    #[error(
        "{}: level `{level}` is listed in multiscales but has no array on disk ({missing} missing): the pyramid is incomplete; re-export the image",
        path.display()
    )]
    MissingLevel {
        /// The image.
        path: PathBuf,
        /// The dataset path (`2`, `s2`, …).
        level: String,
        /// The missing metadata file.
        missing: String,
    },
    /// Axes that do not fit the array.
    #[error("{}: {message}", path.display())]
    Axes {
        /// The image.
        path: PathBuf,
        /// What is inconsistent.
        message: String,
    },
    /// A data type that cannot be staged.
    #[error(
        "{}: data type `{dtype}` is not supported; biomero-stage stages uint8/16/32, int8/16/32, float32 and float64",
        path.display()
    )]
    UnsupportedDtype {
        /// The array.
        path: PathBuf,
        /// The data type as written.
        dtype: String,
    },
    /// Dimensions too large to stage (or absurd metadata).
    #[error("{}: {message}", path.display())]
    TooLarge {
        /// The array.
        path: PathBuf,
        /// Which dimension and the limit.
        message: String,
    },
    /// A chunk that is present but cannot be decoded.
    #[error("{}: chunk {chunk:?} of level `{level}` cannot be decoded ({message}); the chunk file is truncated or corrupt", path.display())]
    CorruptChunk {
        /// The image.
        path: PathBuf,
        /// The level.
        level: String,
        /// The chunk's grid indices.
        chunk: Vec<u64>,
        /// The codec's message.
        message: String,
    },
    /// A plate whose wells or fields are missing.
    #[error("{}: {message}", path.display())]
    Plate {
        /// The plate.
        path: PathBuf,
        /// What is missing or inconsistent.
        message: String,
    },
    /// A label image that does not fit its source image.
    #[error("{}: {message}", path.display())]
    Labels {
        /// The label image.
        path: PathBuf,
        /// What is inconsistent.
        message: String,
    },
    /// A TIFF that cannot be read or written.
    #[error("{}: {message}", path.display())]
    Tiff {
        /// The file.
        path: PathBuf,
        /// The reason.
        message: String,
    },
    /// Writing Zarr failed.
    #[error("{}: cannot write: {message}", path.display())]
    Write {
        /// The node.
        path: PathBuf,
        /// The reason.
        message: String,
    },
    /// A copy or re-encode whose result differs from its source.
    #[error("{}: verification failed: {message}", path.display())]
    Verify {
        /// The copy.
        path: PathBuf,
        /// The first difference.
        message: String,
    },
    /// The target exists already.
    #[error("{} exists already; remove it or choose another output", path.display())]
    Exists {
        /// The path.
        path: PathBuf,
    },
    /// A request that does not make sense for this input.
    #[error("{message}")]
    Invalid {
        /// What is wrong.
        message: String,
    },
}

impl NgffError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        NgffError::Io {
            path: path.into(),
            source,
        }
    }

    /// A metadata file that could not be read, or was larger than `max_metadata_bytes`.
    pub fn metadata_read(
        path: impl Into<PathBuf>,
        e: stage_common::limits::MetadataReadError,
    ) -> Self {
        match e {
            stage_common::limits::MetadataReadError::Io(source) => NgffError::io(path, source),
            too_large @ stage_common::limits::MetadataReadError::TooLarge { .. } => {
                NgffError::metadata(path, too_large.to_string())
            }
        }
    }

    /// A metadata error on `path`.
    pub fn metadata(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        NgffError::Metadata {
            path: path.into(),
            message: message.into(),
        }
    }

    /// A write error on `path`.
    pub fn write(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        NgffError::Write {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

/// Result of the data engine.
pub type Result<T, E = NgffError> = std::result::Result<T, E>;
