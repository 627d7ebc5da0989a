//! Whether the queue a daemon opens is the one it used before.
//!
//! The queue's database holds an identity ([`Store::identity`]); the state directory keeps
//! the identity of the queue last used from it (`queue-id`). When they differ, the queue was
//! lost or replaced — a SQLite file truncated or deleted, a database restored from another
//! site — and the submissions whose results sit under `.analyzed` are no longer in it.
//! Starting silently on an empty queue would orphan them, so the daemon refuses and says
//! how to recover.

use std::path::{Path, PathBuf};

use stage_store::Store;

/// The marker file, in the state directory.
pub const MARKER: &str = "queue-id";

/// Why the queue cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The queue is not the one this state directory used.
    #[error(
        "the queue at {queue} is not the one this daemon used: its identity is {found}, but {marker} says {expected}. The queue was lost or replaced (a truncated or deleted SQLite file, a database from elsewhere), so the submissions this daemon ran are not in it. Restore the queue from its backup; or, to start over with this queue knowingly, delete {marker}"
    )]
    Replaced {
        /// The queue (without its password).
        queue: String,
        /// The identity the database holds.
        found: String,
        /// The identity the marker holds.
        expected: String,
        /// The marker file.
        marker: String,
    },
    /// The queue's identity could not be read.
    #[error(transparent)]
    Store(#[from] stage_store::StoreError),
    /// The marker could not be read or written.
    #[error("{}: {source}", path.display())]
    Marker {
        /// The marker file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Checks the queue against the marker in `state_dir`, writing the marker on first use.
pub async fn check(store: &Store, state_dir: &Path) -> Result<(), IdentityError> {
    let found = store.identity().await?;
    let marker = state_dir.join(MARKER);
    let marker_err = |source| IdentityError::Marker {
        path: marker.clone(),
        source,
    };
    match std::fs::read_to_string(&marker) {
        Ok(text) if text.trim() == found => Ok(()),
        Ok(text) => Err(IdentityError::Replaced {
            queue: store.describe(),
            found,
            expected: text.trim().to_owned(),
            marker: marker.display().to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(state_dir).map_err(marker_err)?;
            stage_common::atomic::write(&marker, format!("{found}\n").as_bytes())
                .map_err(marker_err)?;
            Ok(())
        }
        Err(e) => Err(marker_err(e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn a_queue_that_was_truncated_or_replaced_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let state = d.path().join("state");
        let file = d.path().join("q.sqlite");
        let url = format!("sqlite://{}?mode=rwc", file.display());
        let store = Store::connect(&url).await.unwrap();
        check(&store, &state).await.unwrap();
        check(&store, &state).await.unwrap();
        store.close().await;
        // the file truncated to nothing (its journal gone): a new, empty queue, a new identity
        std::fs::write(&file, b"").unwrap();
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
        }
        let store = Store::connect(&url).await.unwrap();
        let e = check(&store, &state).await.unwrap_err().to_string();
        assert!(
            e.contains("lost or replaced") && e.contains("queue-id") && e.contains("backup"),
            "{e}"
        );
        // knowingly starting over: the marker removed, the new queue is adopted
        std::fs::remove_file(state.join(MARKER)).unwrap();
        check(&store, &state).await.unwrap();
    }
}
