//! Why an input cannot be planned or staged.
//!
//! Every refusal names the input (a path, `Image 12`, `Plate 3`) and says what
//! to do. [`SourceError::is_transient`] separates what is worth retrying (a
//! pixel service that timed out, OMERO answering 502) from what is not (a path
//! outside the data roots, an object of another group).

use std::path::PathBuf;

use stage_ngff::NgffError;

/// Why an input cannot be planned or staged.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The input is not allowed (outside the roots, another group's folder, a symlink that leaves the root).
    #[error("{input}: {reason}")]
    Refused {
        /// The input as given.
        input: String,
        /// Why, and what is allowed.
        reason: String,
    },
    /// The input does not exist (or cannot be seen).
    #[error("{input}: {reason}")]
    NotFound {
        /// The input as given.
        input: String,
        /// What was looked for.
        reason: String,
    },
    /// The input is of the wrong kind for the workflow's input mode.
    #[error("{input}: {reason}")]
    WrongKind {
        /// The input.
        input: String,
        /// What the workflow takes.
        reason: String,
    },
    /// The selection resolves to nothing.
    #[error("nothing to stage: {0}")]
    Empty(String),
    /// The input exists but its data is unusable (broken Zarr, plate with missing wells).
    #[error("{input}: {source}")]
    Data {
        /// The input.
        input: String,
        /// What is wrong with it.
        #[source]
        source: Box<NgffError>,
    },
    /// A source needed by the submission is not configured.
    #[error("{0}")]
    NotConfigured(String),
    /// Logging in to OMERO failed (wrong credentials, unknown server).
    #[error("logging in to OMERO as `{user}` failed: {reason}")]
    Login {
        /// The OMERO user name.
        user: String,
        /// What OMERO.web said.
        reason: String,
    },
    /// OMERO or the pixel service is unreachable or failing (worth retrying).
    #[error("{url}: {reason}")]
    Unavailable {
        /// The URL requested (no credentials in it).
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// OMERO answered with something that is not the documented JSON.
    #[error("{url}: unexpected answer: {reason}")]
    Protocol {
        /// The URL requested.
        url: String,
        /// What did not match.
        reason: String,
    },
    /// Writing the staged data failed.
    #[error("staging {output} failed: {source}")]
    Write {
        /// The output name.
        output: String,
        /// The engine's error.
        #[source]
        source: Box<NgffError>,
    },
    /// A local file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// OMERO's exporter gave no usable store.
    #[error(transparent)]
    Export(#[from] Box<crate::export::ExportError>),
    /// Staging stopped because the submission was cancelled.
    #[error("cancelled")]
    Cancelled,
}

impl SourceError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Unavailable { .. } | SourceError::Io { .. } => true,
            // a local file operation around the export may work later; the export itself,
            // run again on the same image, would fail the same way
            SourceError::Export(e) => matches!(**e, crate::export::ExportError::Io { .. }),
            _ => false,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SourceError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn refused(input: impl Into<String>, reason: impl Into<String>) -> Self {
        SourceError::Refused {
            input: input.into(),
            reason: reason.into(),
        }
    }
}

/// Result with [`SourceError`].
pub type Result<T, E = SourceError> = std::result::Result<T, E>;
