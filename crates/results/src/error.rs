//! Errors of result handling, each naming the file or order it is about.

use std::path::{Path, PathBuf};

/// Why results could not be checked, kept or ordered.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// The output tree holds something that is never kept.
    #[error("the job's output is refused: {path}: {reason}")]
    Unsafe {
        /// The offending entry, relative to the output folder.
        path: String,
        /// What is wrong with it and what to do.
        reason: String,
    },
    /// The output exceeds a configured limit.
    #[error(
        "the job's output is refused: {what} ({limit_key} = {limit}); raise the limit in biomero-stage.toml if this output is expected"
    )]
    TooLarge {
        /// What exceeded the limit.
        what: String,
        /// The setting.
        limit_key: &'static str,
        /// Its value.
        limit: u64,
    },
    /// The job wrote nothing usable.
    #[error("{0}")]
    Useless(String),
    /// A returned Zarr is not valid OME-Zarr.
    #[error("the returned Zarr {path} is not valid OME-Zarr: {source}")]
    Zarr {
        /// The store.
        path: PathBuf,
        /// What the reader said.
        source: stage_ngff::NgffError,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The importer's database could not be reached or queried.
    #[error("BIOMERO.importer's database: {0}")]
    Database(#[from] sqlx::Error),
    /// The importer's database is reachable but not set up.
    #[error(
        "BIOMERO.importer's database has no `imports` table: start BIOMERO.importer once against it (it creates its tables), or check importer_database_url"
    )]
    NoImportsTable,
    /// A setting or a recorded value is unusable.
    #[error("{0}")]
    Invalid(String),
    /// The folder results would be kept in reaches outside the results root.
    #[error("results cannot be kept in {}: {reason}", path.display())]
    Escapes {
        /// The folder (or the component of it at fault).
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
}

impl ResultsError {
    /// An I/O error at `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        ResultsError::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// Whether trying again later may succeed (the importer's database is down).
    pub fn is_transient(&self) -> bool {
        match self {
            ResultsError::Database(e) => {
                matches!(
                    e,
                    sqlx::Error::Io(_)
                        | sqlx::Error::PoolTimedOut
                        | sqlx::Error::PoolClosed
                        | sqlx::Error::WorkerCrashed
                        | sqlx::Error::Tls(_)
                ) || e
                    .as_database_error()
                    .and_then(sqlx::error::DatabaseError::code)
                    .is_some_and(|c| c.starts_with("08") || c.starts_with("57"))
            }
            ResultsError::NoImportsTable => true,
            ResultsError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted | std::io::ErrorKind::TimedOut
            ),
            _ => false,
        }
    }
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, ResultsError>;
