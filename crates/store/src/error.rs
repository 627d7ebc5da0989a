//! Errors of the queue.

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or answered with an error.
    #[error("queue database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("queue database migration failed: {0}; check that the database user may create tables")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL names no supported database.
    #[error(
        "queue database URL `{0}` is not supported; use sqlite://PATH or postgres://USER@HOST/DB"
    )]
    Url(String),
    /// The lease of a claim is gone (expired and taken by another worker, or released).
    #[error("lease on submission {0} was lost; another worker owns it now")]
    LeaseLost(String),
    /// No such submission.
    #[error("no submission with id `{0}`")]
    NotFound(String),
    /// The submission is finished; nothing to cancel.
    #[error("submission {id} is already {state}; it cannot be cancelled")]
    AlreadyFinished {
        /// The submission.
        id: String,
        /// Its final state.
        state: String,
    },
    /// A stored value could not be read back.
    #[error("submission {id}: stored {what} is invalid: {message}")]
    Corrupt {
        /// The submission.
        id: String,
        /// Which column.
        what: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Result of queue operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
