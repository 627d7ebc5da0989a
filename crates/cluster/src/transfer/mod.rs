//! Moving staged inputs to the cluster and results back — resumable and verified.
//!
//! Zarr stores are thousands of small files, where per-file protocols crawl;
//! the default method streams one tar archive over one SSH channel into
//! `tar -xf -` on the cluster (POSIX tools only there). Every transfer works
//! from a listing of both sides (path, size, POSIX `cksum`): after an
//! interruption only what is missing or different is sent again, and the far
//! side is listed again and compared before the transfer counts as done.
//! When the cluster's data path is mounted on this host, a local copy replaces
//! the network ([`local`]).

pub mod download;
pub mod listing;
pub mod local;
mod splice;
pub mod upload;

use serde::{Deserialize, Serialize};

pub use listing::Listing;

use crate::error::{ClusterError, Result};

/// The most a job's output may hold (`max_output_bytes`, `max_output_files`), checked
/// against the far side's listing before anything is transferred, so an oversized output
/// never lands in staging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits {
    /// Bytes.
    pub max_bytes: u64,
    /// Files.
    pub max_files: u64,
}

impl OutputLimits {
    /// No limit.
    pub const NONE: OutputLimits = OutputLimits {
        max_bytes: u64::MAX,
        max_files: u64::MAX,
    };

    /// Refuses `files` files of `bytes` bytes in `what` when they exceed a limit.
    pub fn check(&self, what: &str, files: u64, bytes: u64) -> Result<()> {
        let over = if files > self.max_files {
            Some(format!(
                "{files} files in {what} (max_output_files = {})",
                self.max_files
            ))
        } else if bytes > self.max_bytes {
            Some(format!(
                "{bytes} bytes in {what} (max_output_bytes = {})",
                self.max_bytes
            ))
        } else {
            None
        };
        match over {
            Some(over) => Err(ClusterError::Invalid(format!(
                "the job's output is refused before it is downloaded: {over}; raise the limit in biomero-stage.toml if this output is expected"
            ))),
            None => Ok(()),
        }
    }
}

/// What a transfer did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferReport {
    /// How (`tar-over-ssh`, `local-copy`).
    pub method: String,
    /// Files in the tree.
    pub files: u64,
    /// Bytes in the tree.
    pub bytes: u64,
    /// Files that had to be sent (the rest were already there, intact).
    pub files_sent: u64,
    /// Bytes of those.
    pub bytes_sent: u64,
    /// Wall time in seconds.
    pub seconds: f64,
}
