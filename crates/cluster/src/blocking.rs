//! The one bridge from async steps to blocking file work: a closure run on
//! tokio's blocking pool, its panic or cancellation turned into a
//! [`ClusterError`] that names what was running.

use crate::error::{ClusterError, Result};

/// Runs `f` on the blocking pool; `what` names it in the error when the task dies.
pub async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ClusterError::Invalid(format!("{what} stopped: {e}")))?
}
