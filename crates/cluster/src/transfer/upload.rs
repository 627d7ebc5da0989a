//! Upload: one tar stream over one SSH channel into `tar -xf -` on the cluster.
//!
//! The cluster's side is listed first: what is already there with the same
//! size and `cksum` is not sent again (an interrupted upload resumes), files
//! the cluster holds but this side does not are removed, and the cluster's
//! side is listed again at the end and compared file by file.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use openssh::Stdio;
use tokio::io::AsyncWriteExt as _;

use super::TransferReport;
use super::listing::{self, Listing};
use crate::blocking::blocking;
use crate::cksum::SummingReader;
use crate::error::{ClusterError, Result};
use crate::ssh::Remote;

/// Size of one buffer of the tar stream.
const CHUNK: usize = 1 << 20;
/// Buffers in flight between the reader and the sender.
const POOL: usize = 4;

/// The tar stream's sink: fills pooled buffers and hands them to the sending task.
struct Chunks {
    full: tokio::sync::mpsc::Sender<Vec<u8>>,
    empty: tokio::sync::mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
}

impl Chunks {
    fn send(&mut self) -> std::io::Result<()> {
        let gone = || std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the upload stopped");
        let next = self.empty.blocking_recv().ok_or_else(gone)?;
        let full = std::mem::replace(&mut self.buf, next);
        self.full.blocking_send(full).map_err(|_| gone())
    }
}

impl std::io::Write for Chunks {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.capacity() == 0 {
            self.buf = self.empty.blocking_recv().ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the upload stopped")
            })?;
        }
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        Ok(())
    }
}

const UNTAR: &str = r#"mkdir -p -- "$1" && cd -- "$1" && exec tar -xf -"#;
const REMOVE: &str = r#"cd -- "$1" && shift && rm -f -- "$@""#;

/// Uploads the tree at `local` into `remote_dir` (created if needed).
pub async fn upload(r: &Remote, local: &Path, remote_dir: &str) -> Result<TransferReport> {
    let started = Instant::now();
    let root = local.to_path_buf();
    let files = blocking("listing the upload", move || listing::local_files(&root)).await?;
    if files.is_empty() {
        return Err(ClusterError::Invalid(format!(
            "{} is empty: there is nothing to upload",
            local.display()
        )));
    }
    let before = listing::remote(r, remote_dir).await?;
    // a fresh target: send everything and sum while sending; a resumed one: sum here first
    let (to_send, mut want) = if before.files.is_empty() {
        (
            files.iter().map(|f| f.0.clone()).collect::<Vec<_>>(),
            Listing::default(),
        )
    } else {
        let root = local.to_path_buf();
        let here = blocking("listing the upload", move || listing::local(&root)).await?;
        let extra: Vec<String> = before
            .files
            .keys()
            .filter(|k| !here.files.contains_key(*k))
            .cloned()
            .collect();
        for batch in extra.chunks(500) {
            let mut args = vec![remote_dir.to_owned()];
            args.extend(batch.iter().cloned());
            r.script(REMOVE, &args).await?;
        }
        let send = here.missing_in(&before);
        tracing::info!(
            present = here.files.len() - send.len(),
            to_send = send.len(),
            "resuming an upload"
        );
        (send, here)
    };
    let bytes_sent: u64 = files
        .iter()
        .filter(|(rel, _)| to_send.binary_search(rel).is_ok() || want.files.is_empty())
        .map(|f| f.1)
        .sum();
    let sums = send_tar(r, local, to_send.clone(), remote_dir).await?;
    if want.files.is_empty() {
        want.files = sums;
    }
    let after = listing::remote(r, remote_dir).await?;
    listing::compare(
        &format!("upload to {}:{remote_dir}", r.host()),
        &want,
        &after,
    )?;
    Ok(TransferReport {
        method: "tar-over-ssh".into(),
        files: files.len() as u64,
        bytes: files.iter().map(|f| f.1).sum(),
        files_sent: to_send.len() as u64,
        bytes_sent,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Streams `files` (relative to `root`) as one tar archive into `remote_dir`; returns their sums.
async fn send_tar(
    r: &Remote,
    root: &Path,
    files: Vec<String>,
    remote_dir: &str,
) -> Result<BTreeMap<String, (u32, u64)>> {
    let sess = r.session().await?;
    let mut cmd = sess.command("sh");
    cmd.args(["-c", UNTAR, "sh", remote_dir])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().await.map_err(|e| ClusterError::Dropped {
        host: r.host().to_owned(),
        command: "tar -xf -".into(),
        reason: e.to_string(),
    })?;
    let stdin = child
        .stdin()
        .take()
        .ok_or_else(|| ClusterError::Invalid("no stdin for the remote tar".into()))?;
    let local_root = root.to_path_buf();
    let root: PathBuf = root.to_path_buf();
    // reading + summing (a blocking thread) and sending (this task) overlap: the tar stream
    // goes through a small pool of 1 MiB buffers, so memory stays at a few MiB
    let (full_tx, mut full_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(POOL);
    let (empty_tx, empty_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(POOL);
    for _ in 0..POOL {
        let _ = empty_tx.try_send(Vec::with_capacity(CHUNK));
    }
    let writer =
        tokio::task::spawn_blocking(move || -> std::io::Result<BTreeMap<String, (u32, u64)>> {
            let out = Chunks {
                full: full_tx,
                empty: empty_rx,
                buf: Vec::new(),
            };
            let mut b = tar::Builder::new(out);
            b.mode(tar::HeaderMode::Deterministic);
            let mut sums = BTreeMap::new();
            for rel in files {
                let path = root.join(&rel);
                let f = std::fs::File::open(&path)
                    .map_err(|e| std::io::Error::new(e.kind(), format!("{rel}: {e}")))?;
                let meta = f.metadata()?;
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(meta.len());
                h.set_mode(0o644);
                h.set_mtime(
                    meta.modified()
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_secs()),
                );
                // 1 MiB reads, summed, copied once into the stream's buffer
                let cap = usize::try_from(meta.len())
                    .unwrap_or(CHUNK)
                    .clamp(512, CHUNK);
                let mut reader = std::io::BufReader::with_capacity(cap, SummingReader::new(f));
                b.append_data(&mut h, &rel, &mut reader)?;
                let (sum, len) = reader.into_inner().finish();
                if len != meta.len() {
                    return Err(std::io::Error::other(format!(
                        "{} changed size while it was sent",
                        path.display()
                    )));
                }
                sums.insert(rel, (sum, len));
            }
            let mut out = b.into_inner()?;
            out.flush()?;
            Ok(sums)
        });
    let mut stdin = stdin;
    let mut send_error = None;
    while let Some(mut chunk) = full_rx.recv().await {
        if let Err(e) = stdin.write_all(&chunk).await {
            send_error = Some(e);
            break;
        }
        chunk.clear();
        let _ = empty_tx.send(chunk).await;
    }
    // closing stdin ends the remote tar (and a failed send stops the reader)
    drop(full_rx);
    drop(empty_tx);
    let closed = stdin.shutdown().await;
    drop(stdin);
    if let Some(e) = send_error {
        let _ = writer.await;
        let _ = child.wait_with_output().await;
        r.reset().await;
        return Err(ClusterError::Dropped {
            host: r.host().to_owned(),
            command: "tar -xf -".into(),
            reason: e.to_string(),
        });
    }
    if let Err(e) = closed {
        tracing::debug!(error = %e, "closing the remote tar's input");
    }
    let sent = writer
        .await
        .map_err(|e| ClusterError::Invalid(format!("the tar writer failed: {e}")))?;
    let out = child.wait_with_output().await;
    // a local file that could not be read is this side's fault, whatever the remote tar made of the cut archive
    let sent = match sent {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(ClusterError::Io {
                path: local_root,
                source: e,
            });
        }
        other => other,
    };
    let status = match out {
        Ok(o) => o,
        Err(e) => {
            r.reset().await;
            return Err(ClusterError::Dropped {
                host: r.host().to_owned(),
                command: "tar -xf -".into(),
                reason: e.to_string(),
            });
        }
    };
    if !status.status.success() {
        return Err(ClusterError::Remote {
            host: r.host().to_owned(),
            command: format!("tar -xf - (into {remote_dir})"),
            code: status.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&status.stderr).trim().to_owned(),
        });
    }
    sent.map_err(|e| ClusterError::Dropped {
        host: r.host().to_owned(),
        command: "tar -xf -".into(),
        reason: e.to_string(),
    })
}
