//! When the cluster's data path is mounted on this host (`local_data_path`),
//! inputs are copied there directly — no SSH, no tar — and verified the same way.

use std::path::Path;
use std::time::Instant;

use stage_common::meter::Meter;

use super::TransferReport;
use super::listing;
use crate::error::{ClusterError, Result};

/// Copies the tree at `from` into `to` (files already there and equal are kept), then verifies;
/// what it copies is counted on `meter` as it goes.
pub fn copy_tree(from: &Path, to: &Path, meter: &Meter) -> Result<TransferReport> {
    let started = Instant::now();
    // a copy killed midway leaves its temporary files; they are no part of the tree
    sweep_partials(to)?;
    let want = listing::local(from)?;
    if want.files.is_empty() {
        return Err(ClusterError::Invalid(format!(
            "{} is empty: there is nothing to copy",
            from.display()
        )));
    }
    let have = listing::local(to)?;
    let send = want.missing_in(&have);
    meter.add_total(
        send.iter().map(|s| want.files[s].1).sum(),
        send.len() as u64,
    );
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
        meter.advance(want.files[rel].1, 1);
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

/// Whether `name` is a temporary file of [`copy_tree`] (`.<name>.partial-<pid>`).
fn is_partial(name: &str) -> bool {
    name.starts_with('.')
        && name.rsplit_once(".partial-").is_some_and(|(stem, pid)| {
            stem.len() > 1 && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
        })
}

/// Removes the temporary files an interrupted [`copy_tree`] left under `root`.
fn sweep_partials(root: &Path) -> Result<()> {
    if !root.is_dir() {
        return Ok(());
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| ClusterError::io(&d, e))? {
            let e = e.map_err(|e| ClusterError::io(&d, e))?;
            let ft = e.file_type().map_err(|er| ClusterError::io(e.path(), er))?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if e.file_name().to_str().is_some_and(is_partial) {
                std::fs::remove_file(e.path()).map_err(|er| ClusterError::io(e.path(), er))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_killed_midway_leaves_no_temporary_file_in_the_tree() {
        let d = tempfile::tempdir().unwrap();
        let (from, to) = (d.path().join("from"), d.path().join("to"));
        std::fs::create_dir_all(from.join("a")).unwrap();
        std::fs::write(from.join("a/x.tif"), b"12345").unwrap();
        // what a kill -9 between copy and rename leaves behind (another process id)
        std::fs::create_dir_all(to.join("a")).unwrap();
        std::fs::write(to.join("a/.x.tif.partial-4242"), b"123").unwrap();
        std::fs::write(to.join(".y.partial-1"), b"1").unwrap();
        let r = copy_tree(&from, &to, &Meter::new()).unwrap();
        assert_eq!(r.files, 1);
        let mut left: Vec<String> = listing::local_files(&to)
            .unwrap()
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        left.sort();
        assert_eq!(left, ["a/x.tif"]);
        // names that only look alike stay
        for keep in [
            ".partial-12",
            "x.partial-12",
            ".x.partial-",
            ".x.partial-1a",
        ] {
            assert!(!is_partial(keep), "{keep}");
        }
    }

    #[test]
    fn a_local_copy_resumes_and_verifies() {
        let d = tempfile::tempdir().unwrap();
        let (from, to) = (d.path().join("from"), d.path().join("to"));
        for i in 0..20u8 {
            let dir = from.join(format!("plate.zarr/A/{}", i % 3));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("c{i}")), vec![i; 1000 + usize::from(i)]).unwrap();
        }
        let first = copy_tree(&from, &to, &Meter::new()).unwrap();
        assert_eq!((first.files, first.files_sent), (20, 20));
        // one file damaged without changing its size: only it is copied again
        let victim = to.join("plate.zarr/A/1/c4");
        let mut body = std::fs::read(&victim).unwrap();
        body[10] ^= 0xff;
        std::fs::write(&victim, body).unwrap();
        let second = copy_tree(&from, &to, &Meter::new()).unwrap();
        assert_eq!(second.files_sent, 1);
        assert_eq!(
            listing::local(&from).unwrap().files,
            listing::local(&to).unwrap().files
        );
        let third = copy_tree(&from, &to, &Meter::new()).unwrap();
        assert_eq!(third.files_sent, 0);
        // nothing to copy is an error that names the folder
        let empty = d.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let e = copy_tree(&empty, &to, &Meter::new()).unwrap_err();
        assert!(e.to_string().contains("nothing to copy"), "{e}");
    }
}
