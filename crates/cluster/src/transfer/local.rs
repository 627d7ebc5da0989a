//! When the cluster's data path is mounted on this host (`local_data_path`),
//! inputs are copied there directly — no SSH, no tar — and verified the same way.

use std::path::Path;
use std::time::Instant;

use super::TransferReport;
use super::listing;
use crate::error::{ClusterError, Result};

/// Copies the tree at `from` into `to` (files already there and equal are kept), then verifies.
pub fn copy_tree(from: &Path, to: &Path) -> Result<TransferReport> {
    let started = Instant::now();
    let want = listing::local(from)?;
    if want.files.is_empty() {
        return Err(ClusterError::Invalid(format!(
            "{} is empty: there is nothing to copy",
            from.display()
        )));
    }
    let have = listing::local(to)?;
    let send = want.missing_in(&have);
    for rel in &send {
        let (src, dst) = (from.join(rel), to.join(rel));
        if let Some(p) = dst.parent() {
            std::fs::create_dir_all(p).map_err(|e| ClusterError::io(p, e))?;
        }
        let tmp = dst.with_file_name(format!(
            ".{}.partial-{}",
            dst.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            std::process::id()
        ));
        std::fs::copy(&src, &tmp).map_err(|e| ClusterError::io(&tmp, e))?;
        std::fs::rename(&tmp, &dst).map_err(|e| ClusterError::io(&dst, e))?;
    }
    let after = listing::local(to)?;
    listing::compare(&format!("copy to {}", to.display()), &want, &after)?;
    Ok(TransferReport {
        method: "local-copy".into(),
        files: want.files.len() as u64,
        bytes: want.bytes(),
        files_sent: send.len() as u64,
        bytes_sent: send.iter().map(|s| want.files[s].1).sum(),
        seconds: started.elapsed().as_secs_f64(),
    })
}
