//! Download: `tar -cf -` of the cluster's folder over one SSH channel,
//! unpacked here entry by entry (regular files and directories only, paths
//! confined to the destination).
//!
//! The cluster's side is listed first: an empty folder is a failed job, a
//! symlink or special file is refused, and files already here with the same
//! size and `cksum` are not fetched again. What arrives is summed as each file
//! is written (no read-back) and compared with the listing: every file here then
//! holds the bytes whose `cksum` and size the cluster listed for it.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use openssh::Stdio;
use stage_common::meter::Meter;
use tokio_util::io::SyncIoBridge;

use super::listing::{self, Listing};
use super::{OutputLimits, TransferReport};
use crate::blocking::blocking;
use crate::cksum::Hasher;
use crate::error::{ClusterError, Result};
use crate::ssh::Remote;

const TAR_ALL: &str = r#"cd -- "$1" && exec tar -cf - ."#;
const TAR_SOME: &str = r#"cd -- "$1" && shift && exec tar -cf - -- "$@""#;

/// Downloads the files of `remote_dir` into `local` (created if needed).
/// Refused before anything is fetched when the listing exceeds `limits`.
pub async fn download(
    r: &Remote,
    remote_dir: &str,
    local: &Path,
    limits: &OutputLimits,
) -> Result<TransferReport> {
    download_metered(r, remote_dir, local, limits, Arc::new(Meter::new())).await
}

/// [`download`], counting what arrives on `meter` as it goes.
pub async fn download_metered(
    r: &Remote,
    remote_dir: &str,
    local: &Path,
    limits: &OutputLimits,
    meter: Arc<Meter>,
) -> Result<TransferReport> {
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
    limits.check(
        &format!("{}:{remote_dir}", r.host()),
        there.files.len() as u64,
        there.bytes(),
    )?;
    std::fs::create_dir_all(local).map_err(|e| ClusterError::io(local, e))?;
    let root = local.to_path_buf();
    let here = blocking("listing the download", move || listing::local(&root)).await?;
    let wanted = there.missing_in(&here);
    let all = wanted.len() == there.files.len();
    meter.add_total(
        wanted.iter().map(|w| there.files[w].1).sum(),
        wanted.len() as u64,
    );
    // what is fetched is summed as it is written: the check below reads nothing back
    let mut after = here;
    if all {
        after
            .files
            .extend(fetch(r, remote_dir, TAR_ALL, Vec::new(), local, &meter).await?);
    } else {
        let mut batch = Vec::new();
        let mut len = 0;
        for f in &wanted {
            len += f.len() + 3;
            batch.push(f.clone());
            if len > 60_000 {
                after.files.extend(
                    fetch(
                        r,
                        remote_dir,
                        TAR_SOME,
                        std::mem::take(&mut batch),
                        local,
                        &meter,
                    )
                    .await?,
                );
                len = 0;
            }
        }
        if !batch.is_empty() {
            after
                .files
                .extend(fetch(r, remote_dir, TAR_SOME, batch, local, &meter).await?);
        }
    }
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
    meter: &Arc<Meter>,
) -> Result<BTreeMap<String, (u32, u64)>> {
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
    let meter = meter.clone();
    let reader = tokio::task::spawn_blocking(move || {
        unpack_tar(
            std::io::BufReader::with_capacity(1 << 20, SyncIoBridge::new(stdout)),
            &dest,
            &meter,
        )
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
    unpacked.map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            ClusterError::Verify {
                what: format!("download of {}:{remote_dir}", r.host()),
                reason: e.to_string(),
            }
        } else {
            dropped(&e)
        }
    })
}

/// Unpacks a tar stream into `dest`: regular files and directories only, every
/// name relative and inside; anything else is refused (`InvalidData`). Public for the
/// fuzzer, which feeds it hostile archives.
///
/// Each file is summed (POSIX `cksum`) as it is written, so the download is checked against the
/// cluster's listing without reading it back: `Ok` holds every file written, relative path →
/// (cksum, size).
pub fn unpack_tar(
    reader: impl std::io::Read,
    dest: &Path,
    meter: &Meter,
) -> std::io::Result<BTreeMap<String, (u32, u64)>> {
    let refuse = |msg: String| std::io::Error::new(std::io::ErrorKind::InvalidData, msg);
    let mut a = tar::Archive::new(reader);
    a.set_preserve_permissions(false);
    a.set_unpack_xattrs(false);
    a.set_overwrite(true);
    let mut written = BTreeMap::new();
    let mut buf = vec![0u8; 1 << 20];
    for e in a.entries()? {
        let mut e = e?;
        let path = e.path()?.into_owned();
        if !safe_relative(&path) {
            return Err(refuse(format!(
                "the archive names `{}`, outside the output folder (absolute or with `..`); refusing it",
                path.display()
            )));
        }
        match e.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let sum = write_entry(&mut e, dest, &path, &mut buf, meter)?;
                let rel = path
                    .components()
                    .filter_map(|c| match c {
                        Component::Normal(n) => n.to_str().map(str::to_owned),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join("/");
                written.insert(rel, sum);
                meter.advance(0, 1);
            }
            tar::EntryType::Directory => {
                std::fs::create_dir_all(dest.join(&path))?;
            }
            tar::EntryType::Link => {
                return Err(refuse(format!(
                    "`{}` is a hard link; outputs must be files of their own",
                    path.display()
                )));
            }
            tar::EntryType::Symlink => {
                return Err(refuse(format!(
                    "`{}` is a symbolic link; outputs must be regular files",
                    path.display()
                )));
            }
            other => {
                return Err(refuse(format!(
                    "`{}` is a {other:?}, not a regular file; refusing it",
                    path.display()
                )));
            }
        }
    }
    Ok(written)
}

/// Writes one regular entry at `dest/path` (`path` already checked relative and inside), summing
/// it as it goes. Nothing is followed: a symbolic link anywhere on the way is refused, so the
/// bytes land in the output folder or nowhere.
fn write_entry(
    entry: &mut impl std::io::Read,
    dest: &Path,
    path: &Path,
    buf: &mut [u8],
    meter: &Meter,
) -> std::io::Result<(u32, u64)> {
    let refuse = |msg: String| std::io::Error::new(std::io::ErrorKind::InvalidData, msg);
    let target = dest.join(path);
    let mut at = dest.to_path_buf();
    for c in path.components() {
        if let Component::Normal(n) = c {
            at.push(n);
            match std::fs::symlink_metadata(&at) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(refuse(format!(
                        "`{}` would be written through a symbolic link in the output folder",
                        path.display()
                    )));
                }
                Ok(m) if at != target && !m.is_dir() => {
                    return Err(refuse(format!(
                        "`{}` needs `{}` to be a folder",
                        path.display(),
                        at.display()
                    )));
                }
                _ => {}
            }
        }
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let _ = std::fs::remove_file(&target);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&target)?;
    let mut sum = Hasher::default();
    loop {
        let n = match entry.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        sum.update(&buf[..n]);
        file.write_all(&buf[..n])?;
        // bytes as they are written: a large file's progress moves while it is written
        meter.advance(n as u64, 0);
    }
    Ok(sum.finish())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn archive(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn entry(b: &mut tar::Builder<Vec<u8>>, name: &[u8], kind: tar::EntryType, link: Option<&str>) {
        let mut h = tar::Header::new_gnu();
        // write the raw name: the tar crate refuses `..` and `/` through set_path
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name);
        h.set_entry_type(kind);
        h.set_size(if kind == tar::EntryType::Regular {
            3
        } else {
            0
        });
        h.set_mode(0o644);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        h.set_cksum();
        let body: &[u8] = if kind == tar::EntryType::Regular {
            b"abc"
        } else {
            b""
        };
        b.append(&h, body).unwrap();
    }

    #[test]
    fn unsafe_archive_entries_are_refused_and_nothing_lands_outside() {
        let cases: [(&[u8], tar::EntryType, Option<&str>, &str); 6] = [
            (
                b"../evil.txt",
                tar::EntryType::Regular,
                None,
                "outside the output folder",
            ),
            (
                b"a/../../evil.txt",
                tar::EntryType::Regular,
                None,
                "outside the output folder",
            ),
            (
                b"/tmp/evil.txt",
                tar::EntryType::Regular,
                None,
                "outside the output folder",
            ),
            (
                b"link",
                tar::EntryType::Symlink,
                Some("/etc/passwd"),
                "symbolic link",
            ),
            (
                b"hard",
                tar::EntryType::Link,
                Some("/etc/passwd"),
                "hard link",
            ),
            (
                b"pipe",
                tar::EntryType::Fifo,
                None,
                "Fifo, not a regular file",
            ),
        ];
        for (name, kind, link, want) in cases {
            let d = tempfile::tempdir().unwrap();
            let dest = d.path().join("out");
            std::fs::create_dir(&dest).unwrap();
            let bytes = archive(|b| entry(b, name, kind, link));
            let e = unpack_tar(bytes.as_slice(), &dest, &Meter::new()).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
            assert!(
                e.to_string().contains(want),
                "{}: {e}",
                String::from_utf8_lossy(name)
            );
            assert!(!d.path().join("evil.txt").exists());
            assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0);
        }
        // a clean archive unpacks
        let d = tempfile::tempdir().unwrap();
        let bytes = archive(|b| entry(b, b"./x/ok.txt", tar::EntryType::Regular, None));
        let meter = Meter::new();
        let written = unpack_tar(bytes.as_slice(), d.path(), &meter).unwrap();
        assert_eq!(std::fs::read(d.path().join("x/ok.txt")).unwrap(), b"abc");
        let m = meter.read();
        assert_eq!((m.bytes_done, m.files_done), (3, 1));
        assert_eq!(
            written,
            BTreeMap::from([(
                "x/ok.txt".to_owned(),
                crate::cksum::of_file(&d.path().join("x/ok.txt")).unwrap()
            )])
        );
    }

    #[test]
    fn files_are_summed_as_written_and_never_written_through_a_link() {
        // several files, one twice (the later wins, as tar unpacks it), summed as POSIX cksum
        let bytes = archive(|b| {
            for (name, body) in [
                ("a.bin", &b"first"[..]),
                ("d/b.bin", b"second"),
                ("a.bin", b"third!"),
            ] {
                let mut h = tar::Header::new_gnu();
                h.set_path(name).unwrap();
                h.set_size(body.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                b.append(&h, body).unwrap();
            }
        });
        let d = tempfile::tempdir().unwrap();
        let written = unpack_tar(bytes.as_slice(), d.path(), &Meter::new()).unwrap();
        assert_eq!(written.len(), 2);
        for (rel, sum) in &written {
            assert_eq!(
                crate::cksum::of_file(&d.path().join(rel)).unwrap(),
                *sum,
                "{rel}"
            );
        }
        assert_eq!(written["a.bin"], (crate::cksum::of_bytes(b"third!"), 6));
        // a folder of the destination that is a link to elsewhere is not written through
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("esc")).unwrap();
        let bytes = archive(|b| entry(b, b"esc/x.txt", tar::EntryType::Regular, None));
        let e = unpack_tar(bytes.as_slice(), d.path(), &Meter::new()).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }
}
