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
pub mod upload;

use serde::{Deserialize, Serialize};

pub use listing::Listing;

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
