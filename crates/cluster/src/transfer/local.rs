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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_copy_resumes_and_verifies() {
        let d = tempfile::tempdir().unwrap();
        let (from, to) = (d.path().join("from"), d.path().join("to"));
        for i in 0..20u8 {
            let dir = from.join(format!("plate.zarr/A/{}", i % 3));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("c{i}")), vec![i; 1000 + usize::from(i)]).unwrap();
        }
        let first = copy_tree(&from, &to).unwrap();
        assert_eq!((first.files, first.files_sent), (20, 20));
        // one file damaged without changing its size: only it is copied again
        let victim = to.join("plate.zarr/A/1/c4");
        let mut body = std::fs::read(&victim).unwrap();
        body[10] ^= 0xff;
        std::fs::write(&victim, body).unwrap();
        let second = copy_tree(&from, &to).unwrap();
        assert_eq!(second.files_sent, 1);
        assert_eq!(
            listing::local(&from).unwrap().files,
            listing::local(&to).unwrap().files
        );
        let third = copy_tree(&from, &to).unwrap();
        assert_eq!(third.files_sent, 0);
        // nothing to copy is an error that names the folder
        let empty = d.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let e = copy_tree(&empty, &to).unwrap_err();
        assert!(e.to_string().contains("nothing to copy"), "{e}");
    }
}
