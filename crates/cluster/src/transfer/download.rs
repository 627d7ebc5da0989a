//! Download: `tar -cf -` of the cluster's folder over one SSH channel,
//! unpacked here entry by entry (regular files and directories only, paths
//! confined to the destination).
//!
//! The cluster's side is listed first: an empty folder is a failed job, a
//! symlink or special file is refused, and files already here with the same
//! size and `cksum` are not fetched again. What arrives is summed and compared
//! with the listing.

use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use openssh::Stdio;
use tokio_util::io::SyncIoBridge;

use super::TransferReport;
use super::listing::{self, Listing};
use crate::error::{ClusterError, Result};
use crate::ssh::Remote;

const TAR_ALL: &str = r#"cd -- "$1" && exec tar -cf - ."#;
const TAR_SOME: &str = r#"cd -- "$1" && shift && exec tar -cf - -- "$@""#;

/// Downloads the files of `remote_dir` into `local` (created if needed).
pub async fn download(r: &Remote, remote_dir: &str, local: &Path) -> Result<TransferReport> {
    let started = Instant::now();
    let there = listing::remote(r, remote_dir).await?;
    if !there.others.is_empty() {
        return Err(ClusterError::Verify {
            what: format!("{}:{remote_dir}", r.host()),
            reason: format!(
                "holds symlinks or special files, which are never downloaded: {}",
                there.others.join(", ")
            ),
        });
    }
    if there.files.is_empty() {
        return Err(ClusterError::EmptyOutput(format!(
            "{}:{remote_dir}",
            r.host()
        )));
    }
    std::fs::create_dir_all(local).map_err(|e| ClusterError::io(local, e))?;
    let root = local.to_path_buf();
    let here = tokio::task::spawn_blocking(move || listing::local(&root))
        .await
        .map_err(|e| ClusterError::Invalid(format!("listing failed: {e}")))??;
    let wanted = there.missing_in(&here);
    let all = wanted.len() == there.files.len();
    if all {
        fetch(r, remote_dir, TAR_ALL, Vec::new(), local).await?;
    } else {
        let mut batch = Vec::new();
        let mut len = 0;
        for f in &wanted {
            len += f.len() + 3;
            batch.push(f.clone());
            if len > 60_000 {
                fetch(r, remote_dir, TAR_SOME, std::mem::take(&mut batch), local).await?;
                len = 0;
            }
        }
        if !batch.is_empty() {
            fetch(r, remote_dir, TAR_SOME, batch, local).await?;
        }
    }
    let root = local.to_path_buf();
    let after = tokio::task::spawn_blocking(move || listing::local(&root))
        .await
        .map_err(|e| ClusterError::Invalid(format!("listing failed: {e}")))??;
    let only_there = Listing {
        files: there.files.clone(),
        others: Vec::new(),
    };
    listing::compare(
        &format!("download of {}:{remote_dir}", r.host()),
        &only_there,
        &after,
    )?;
    Ok(TransferReport {
        method: "tar-over-ssh".into(),
        files: there.files.len() as u64,
        bytes: there.bytes(),
        files_sent: wanted.len() as u64,
        bytes_sent: wanted.iter().map(|w| there.files[w].1).sum(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn safe_relative(p: &Path) -> bool {
    p.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

async fn fetch(
    r: &Remote,
    remote_dir: &str,
    script: &'static str,
    files: Vec<String>,
    local: &Path,
) -> Result<()> {
    let sess = r.session().await?;
    let mut args = vec![
        "-c".to_owned(),
        script.to_owned(),
        "sh".to_owned(),
        remote_dir.to_owned(),
    ];
    args.extend(files);
    let mut cmd = sess.command("sh");
    cmd.args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let dropped = |e: &dyn std::fmt::Display| ClusterError::Dropped {
        host: r.host().to_owned(),
        command: format!("tar -cf - (of {remote_dir})"),
        reason: e.to_string(),
    };
    let mut child = cmd.spawn().await.map_err(|e| dropped(&e))?;
    let stdout = child
        .stdout()
        .take()
        .ok_or_else(|| ClusterError::Invalid("no stdout from the remote tar".into()))?;
    let dest: PathBuf = local.to_path_buf();
    let reader = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let bridge = SyncIoBridge::new(stdout);
        let mut a = tar::Archive::new(std::io::BufReader::with_capacity(1 << 20, bridge));
        a.set_preserve_permissions(false);
        a.set_unpack_xattrs(false);
        a.set_overwrite(true);
        for e in a.entries()? {
            let mut e = e?;
            let path = e.path()?.into_owned();
            if !safe_relative(&path) {
                return Err(std::io::Error::other(format!(
                    "the archive names {} outside the folder",
                    path.display()
                )));
            }
            match e.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    e.unpack_in(&dest)?;
                }
                tar::EntryType::Directory => {
                    std::fs::create_dir_all(dest.join(&path))?;
                }
                other => {
                    return Err(std::io::Error::other(format!(
                        "{} is a {other:?}, not a file; refusing it",
                        path.display()
                    )));
                }
            }
        }
        Ok(())
    });
    let unpacked = reader
        .await
        .map_err(|e| ClusterError::Invalid(format!("the tar reader failed: {e}")))?;
    let out = child.wait_with_output().await.map_err(|e| dropped(&e))?;
    if !out.status.success() {
        r.reset().await;
        return Err(ClusterError::Remote {
            host: r.host().to_owned(),
            command: format!("tar -cf - (of {remote_dir})"),
            code: out.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    unpacked.map_err(|e| dropped(&e))
}
