//! Upload: one tar stream over one SSH channel into `tar -xf -` on the cluster.
//!
//! The cluster's side is listed first: what is already there with the same
//! size and `cksum` is not sent again (an interrupted upload resumes), files
//! the cluster holds but this side does not are removed.
//!
//! On this side files of 64 KiB and more are spliced from the page cache into the channel's
//! pipe and read once, separately, for the sum ([`super::splice`]); smaller ones are gathered
//! with the headers into 64 KiB writes.
//!
//! The stream is verified as it flows, not by reading it back: the far side
//! passes it through a tee (`tee.pl`: tee(2) and splice(2) between pipes, no copy; GNU
//! `tee` where there is no perl) into both `tar -xf -` and POSIX `cksum`, this side
//! sums the same bytes as it sends them, and the two sums and lengths must
//! agree and tar must exit 0. What that proves: every byte tar unpacked on the
//! cluster is the byte sent (CRC-32 and length of the whole archive, with each
//! file's size and name in its header), and tar wrote every entry without an
//! error. The same session then lists the folder by size (GNU `find -printf`,
//! no file read) and every file must be there at its size. What it no longer proves:
//! that the cluster's filesystem hands the same bytes back later (the old
//! read-back `cksum` listing did); files already there when an upload resumes
//! are still summed on the far side before they are skipped.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use openssh::Stdio;
use stage_common::meter::Meter;

use super::TransferReport;
use super::listing;
use super::splice::{FileSender, SPLICE_FROM};
use crate::blocking::blocking;
use crate::cksum::Hasher;
use crate::error::{ClusterError, Result};
use crate::ssh::Remote;

/// Headers, padding and small files are gathered into writes of this size; larger files are
/// spliced into the pipe ([`FileSender`]).
const BATCH: usize = 64 << 10;

/// The tar stream's sink: the SSH channel's pipe, written with blocking writes from the tar
/// thread (as `tar c | ssh` does), summing every byte that is written.
struct Summing<W> {
    inner: W,
    sum: Hasher,
}

impl<W: std::io::Write> std::io::Write for Summing<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(data)?;
        self.sum.update(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Unpacks the stream into `$1` and sums it on the way: [`TEE`] (given as `$2`; GNU `tee`
/// where the cluster has no perl) feeds `tar -xf -` and `cksum`; prints `tar <exit code>`
/// and `cksum`'s `<crc> <length>` (fd 4 is the channel's stdout; what tar leaves unread
/// after the archive's end is drained so the whole stream is summed).
const UNTAR: &str = r#"mkdir -p -- "$1" && cd -- "$1" || exit 1
{ { { if command -v perl >/dev/null 2>&1; then perl -e "$2"; else tee /dev/fd/3; fi | { tar -xf - >&2; echo "tar $?" >&4; cat > /dev/null; }; } 3>&1 | cksum >&4; } 4>&1; }
echo '#sizes'"#;

/// The far side's tee: the stream to tar and to cksum, moved between pipes by the kernel
/// (tee(2), splice(2)) instead of copied through a process (GNU tee's read and two writes
/// cost a third of the upload's speed on a 2-core host).
const TEE: &str = include_str!("tee.pl");
const REMOVE: &str = r#"cd -- "$1" && shift && rm -f -- "$@""#;

/// Uploads the tree at `local` into `remote_dir` (created if needed).
pub async fn upload(r: &Remote, local: &Path, remote_dir: &str) -> Result<TransferReport> {
    upload_metered(r, local, remote_dir, Arc::new(Meter::new())).await
}

/// [`upload`], counting what is sent on `meter` as it goes.
pub async fn upload_metered(
    r: &Remote,
    local: &Path,
    remote_dir: &str,
    meter: Arc<Meter>,
) -> Result<TransferReport> {
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
    // a fresh target: send everything; a resumed one: sum here, send what differs
    let to_send = if before.files.is_empty() {
        files.iter().map(|f| f.0.clone()).collect::<Vec<_>>()
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
        send
    };
    let bytes_sent: u64 = files
        .iter()
        .filter(|(rel, _)| to_send.binary_search(rel).is_ok())
        .map(|f| f.1)
        .sum();
    meter.add_total(bytes_sent, to_send.len() as u64);
    // the untar session lists what is there when it is done; with nothing to send, a listing
    let after = if to_send.is_empty() {
        listing::remote_sizes(r, remote_dir).await?
    } else {
        // files, as listed: no stat to tell folders apart
        let names = Box::new(to_send.clone().into_iter().map(Ok));
        send_tar(r, local, names, remote_dir, meter, false).await?.1
    };
    let want: BTreeMap<String, u64> = files.iter().cloned().collect();
    listing::compare_sizes(
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

/// The files `name` stands for under `root`: itself, or every file under it when it is a
/// folder (sorted), as paths relative to `root`.
fn files_of(root: &Path, name: String) -> Vec<std::io::Result<String>> {
    let path = root.join(&name);
    if !path.is_dir() {
        return vec![Ok(name)];
    }
    match listing::local_files(&path) {
        Ok(files) => files
            .into_iter()
            .map(|(sub, _)| Ok(format!("{name}/{sub}")))
            .collect(),
        Err(e) => vec![Err(std::io::Error::other(e.to_string()))],
    }
}

/// An upload made while the inputs were staged: each output sent on one tar stream as soon
/// as it was complete.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Streamed {
    /// What the transfer did.
    pub report: TransferReport,
    /// The `cksum` of the listing of what was sent: a `<path>\t<size>\n` line per file,
    /// sorted (a few bytes in the step's record, whatever the number of files).
    pub listing_sum: u32,
}

/// The `cksum` of a listing of files and sizes (see [`Streamed::listing_sum`]).
fn listing_sum(files: &BTreeMap<String, u64>) -> u32 {
    let mut h = Hasher::default();
    for (name, size) in files {
        h.update(format!("{name}\t{size}\n").as_bytes());
    }
    h.finish().0
}

/// Uploads into `remote_dir` the outputs named on `names` (relative to `local`; a folder for
/// every file under it), each sent when its name arrives, on one tar stream verified as
/// [`upload`]'s is; the stream ends when every sender is dropped. `remote_dir` must hold no
/// file yet: a target an earlier attempt began is left to [`upload`], which resumes it.
pub async fn upload_streamed(
    r: &Remote,
    local: &Path,
    names: std::sync::mpsc::Receiver<String>,
    remote_dir: &str,
    meter: Arc<Meter>,
) -> Result<Streamed> {
    let started = Instant::now();
    let before = listing::remote_sizes(r, remote_dir).await?;
    if !before.is_empty() {
        return Err(ClusterError::Invalid(format!(
            "{}:{remote_dir} already holds {} files: the upload step resumes it",
            r.host(),
            before.len()
        )));
    }
    let root = local.to_path_buf();
    let (sent, after) = send_tar(
        r,
        local,
        Box::new(
            names
                .into_iter()
                .flat_map(move |name| files_of(&root, name)),
        ),
        remote_dir,
        meter,
        true,
    )
    .await?;
    let files: BTreeMap<String, u64> = sent.into_iter().collect();
    listing::compare_sizes(
        &format!("upload to {}:{remote_dir}", r.host()),
        &files,
        &after,
    )?;
    let bytes = files.values().sum();
    Ok(Streamed {
        report: TransferReport {
            method: STREAMED.into(),
            files: files.len() as u64,
            bytes,
            files_sent: files.len() as u64,
            bytes_sent: bytes,
            seconds: started.elapsed().as_secs_f64(),
        },
        listing_sum: listing_sum(&files),
    })
}

/// [`TransferReport::method`] of an upload made while staging.
pub const STREAMED: &str = "tar-over-ssh, while staging";

/// Whether the upload [`upload_streamed`] made of `local` still stands: this side holds
/// what was sent, and the cluster's `remote_dir` the same files at the same sizes (both
/// listings sum to `sent`'s; listed by size, no file read). `None` when anything differs:
/// [`upload`] then resumes.
pub async fn confirm_streamed(
    r: &Remote,
    local: &Path,
    remote_dir: &str,
    sent: &Streamed,
) -> Result<Option<TransferReport>> {
    let root = local.to_path_buf();
    let here: BTreeMap<String, u64> =
        blocking("listing the upload", move || listing::local_files(&root))
            .await?
            .into_iter()
            .collect();
    if listing_sum(&here) != sent.listing_sum {
        return Ok(None);
    }
    let there = listing::remote_sizes(r, remote_dir).await?;
    Ok((listing_sum(&there) == sent.listing_sum).then(|| sent.report.clone()))
}

/// The error of an upload whose channel broke (`why`), after resetting the connection.
async fn dropped(r: &Remote, why: String) -> ClusterError {
    r.reset().await;
    ClusterError::Dropped {
        host: r.host().to_owned(),
        command: "tar -xf -".into(),
        reason: why,
    }
}

/// What the far side's [`UNTAR`] printed, checked against the stream sent (`sum`, `len`):
/// tar's exit code, then the far side's `cksum` of what tar was given.
fn check_untar(out: &str, stderr: &str, sent: (u32, u64)) -> std::result::Result<(), UntarOutcome> {
    let mut tar = None;
    let mut sum = None;
    for line in out.lines() {
        if let Some(code) = line.strip_prefix("tar ") {
            tar = code.trim().parse::<i32>().ok();
        } else {
            let mut it = line.split_whitespace();
            if let (Some(c), Some(l), None) = (it.next(), it.next(), it.next()) {
                sum = c.parse::<u32>().ok().zip(l.parse::<u64>().ok());
            }
        }
    }
    match (tar, sum) {
        (Some(0), Some(got)) if got == sent => Ok(()),
        (Some(0), Some((crc, len))) => Err(UntarOutcome::Differs(format!(
            "the cluster received {len} bytes with cksum {crc}; {} bytes with cksum {} were sent",
            sent.1, sent.0
        ))),
        (Some(code), _) if code != 0 => Err(UntarOutcome::TarFailed {
            code,
            stderr: stderr.trim().to_owned(),
        }),
        _ => Err(UntarOutcome::Unreadable(format!(
            "the cluster's tar and cksum did not report (output `{}`, errors `{}`)",
            out.trim(),
            stderr.trim()
        ))),
    }
}

/// Why the far side's unpacking does not count as done.
#[derive(Debug, PartialEq)]
enum UntarOutcome {
    /// The stream arrived different.
    Differs(String),
    /// tar failed (its exit code and message).
    TarFailed { code: i32, stderr: String },
    /// The far side printed something else (a shell without `tee`, `/dev/fd`, `cksum`).
    Unreadable(String),
}

/// Streams the files `names` (relative to `root`) as one tar
/// archive into `remote_dir`, as they come, and checks that the cluster unpacked exactly the
/// stream sent. With `count_totals` each file is added to `meter`'s totals as it is taken
/// (the names are not known up front). What was sent, and the cluster's sizes after.
async fn send_tar(
    r: &Remote,
    root: &Path,
    names: Box<dyn Iterator<Item = std::io::Result<String>> + Send>,
    remote_dir: &str,
    meter: Arc<Meter>,
    count_totals: bool,
) -> Result<(Vec<(String, u64)>, BTreeMap<String, u64>)> {
    let sess = r.session().await?;
    let mut cmd = sess.command("sh");
    let script = format!("{UNTAR}\n{}", listing::SIZES_HERE);
    cmd.args(["-c", &script, "sh", remote_dir, TEE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
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
    // the channel's input as a blocking pipe, written straight from the tar thread: no hop
    // through the async runtime per buffer (it cost a third of the throughput here)
    let pipe = std::fs::File::from(stdin.into_owned_fd().map_err(|e| ClusterError::Dropped {
        host: r.host().to_owned(),
        command: "tar -xf -".into(),
        reason: e.to_string(),
    })?);
    let local_root = root.to_path_buf();
    let root: PathBuf = root.to_path_buf();
    let writer = tokio::task::spawn_blocking(
        move || -> std::io::Result<((u32, u64), Vec<(String, u64)>)> {
            let out = Summing {
                inner: std::io::BufWriter::with_capacity(BATCH, pipe),
                sum: Hasher::default(),
            };
            let mut b = tar::Builder::new(out);
            b.mode(tar::HeaderMode::Deterministic);
            let mut sent = Vec::new();
            let mut files = FileSender::new();
            for rel in names {
                let rel = rel?;
                let path = root.join(&rel);
                let f = std::fs::File::open(&path)
                    .map_err(|e| std::io::Error::new(e.kind(), format!("{rel}: {e}")))?;
                let meta = f.metadata()?;
                if count_totals {
                    meter.add_total(meta.len(), 1);
                }
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
                let named =
                    |e: std::io::Error| std::io::Error::new(e.kind(), format!("{rel}: {e}"));
                if meta.len() < SPLICE_FROM {
                    let data = files.read_small(&f, meta.len()).map_err(named)?;
                    b.append_data(&mut h, &rel, data)?;
                    meter.advance(meta.len(), 0);
                } else {
                    // the header (and a long name's extra entry) through the writer, the data
                    // spliced from the file straight into the pipe, then the header's padding
                    b.append_data(&mut h, &rel, std::io::empty())?;
                    let out = b.get_mut();
                    out.inner.flush()?;
                    // progress by pieces: a large file's moves while it is sent
                    let progress = &mut |n| meter.advance(n, 0);
                    files
                        .send(&f, meta.len(), out.inner.get_mut(), &mut out.sum, progress)
                        .map_err(named)?;
                    let pad = (512 - meta.len() % 512) % 512;
                    out.write_all(&[0; 512][..pad as usize])?;
                }
                meter.advance(0, 1);
                sent.push((rel, meta.len()));
            }
            let mut out = b.into_inner()?;
            out.flush()?;
            // dropping the pipe here closes the channel's input: the remote tar sees the end
            Ok((out.sum.finish(), sent))
        },
    );
    // the far side's output is read while the stream is written: a chatty remote tar must not
    // block on a full stderr while this side blocks on a full stdin
    let (sent, out) = tokio::join!(writer, child.wait_with_output());
    let sent = sent.map_err(|e| ClusterError::Invalid(format!("the tar writer failed: {e}")))?;
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
    // the channel broke, on either side: the connection is reset for the next attempt
    let (status, (sent, files)) = match (out, sent) {
        (Ok(status), Ok(sent)) => (status, sent),
        (Err(e), _) => return Err(dropped(r, e.to_string()).await),
        (_, Err(e)) => return Err(dropped(r, e.to_string()).await),
    };
    let stdout = String::from_utf8_lossy(&status.stdout);
    let stderr = String::from_utf8_lossy(&status.stderr);
    // what tar and cksum reported, then (after `#sizes`) the listing of what is there
    let (untar, sizes) = match stdout.split_once("#sizes\n") {
        Some((untar, sizes)) => (untar, Some(sizes)),
        None => (stdout.as_ref(), None),
    };
    check_untar(untar, &stderr, sent).map_err(|outcome| match outcome {
        UntarOutcome::Differs(reason) => ClusterError::Verify {
            what: format!("upload to {}:{remote_dir}", r.host()),
            reason,
        },
        UntarOutcome::TarFailed { code, stderr } => ClusterError::Remote {
            host: r.host().to_owned(),
            command: format!("tar -xf - (into {remote_dir})"),
            code,
            stderr,
        },
        UntarOutcome::Unreadable(reason) => ClusterError::Remote {
            host: r.host().to_owned(),
            command: format!("tar -xf - | cksum (into {remote_dir})"),
            code: status.status.code().unwrap_or(-1),
            stderr: reason,
        },
    })?;
    match sizes {
        Some(sizes) => Ok((files, listing::sizes_from(sizes, remote_dir)?)),
        None => Err(ClusterError::Parse {
            command: format!("find {remote_dir} -printf (after tar -xf -)"),
            reason: format!(
                "the listing after unpacking is missing (errors `{}`)",
                stderr.trim()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A tar stream as [`send_tar`] writes it, with this side's sum of it.
    fn stream(files: &[(&str, &[u8])]) -> (Vec<u8>, (u32, u64)) {
        let mut b = tar::Builder::new(Vec::new());
        for (name, body) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, *body).unwrap();
        }
        let bytes = b.into_inner().unwrap();
        let mut sum = Hasher::default();
        sum.update(&bytes);
        (bytes, sum.finish())
    }

    /// Runs [`UNTAR`] with this host's `sh`, `perl`, `tar` and `cksum` (the cluster's tools).
    fn untar(dir: &Path, input: &[u8]) -> (String, String) {
        untar_with(dir, input, Feed::Pipe, None)
    }

    /// How the stream reaches the far side's tee.
    #[derive(Clone, Copy)]
    enum Feed {
        /// A pipe, as sshd gives it: tee(2) and splice(2) apply.
        Pipe,
        /// A regular file: tee(2) refuses it, the perl tee copies.
        File,
    }

    /// [`untar`] with stdin fed as `feed`, and `PATH` set to `path` when given.
    fn untar_with(dir: &Path, input: &[u8], feed: Feed, path: Option<&Path>) -> (String, String) {
        use std::io::Write as _;
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.args(["-c", UNTAR, "sh"])
            .arg(dir)
            .arg(TEE)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(path) = path {
            cmd.env("PATH", path);
        }
        let keep = tempfile::NamedTempFile::new().unwrap();
        let out = match feed {
            Feed::Pipe => {
                let mut child = cmd.stdin(std::process::Stdio::piped()).spawn().unwrap();
                child.stdin.take().unwrap().write_all(input).unwrap();
                child.wait_with_output().unwrap()
            }
            Feed::File => {
                std::fs::write(keep.path(), input).unwrap();
                let f = std::fs::File::open(keep.path()).unwrap();
                cmd.stdin(f).output().unwrap()
            }
        };
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    #[test]
    fn every_way_of_the_far_side_tee_gives_tar_and_cksum_the_whole_stream() {
        // the perl tee on a pipe (tee(2), splice(2)), on a file (its copy loop), and GNU tee
        // on a cluster without perl: the same files, the same sum
        let d = tempfile::tempdir().unwrap();
        let no_perl = d.path().join("bin");
        std::fs::create_dir(&no_perl).unwrap();
        for tool in ["tar", "cksum", "tee", "cat", "mkdir", "find"] {
            let real = ["/usr/bin", "/bin"]
                .iter()
                .map(|dir| Path::new(dir).join(tool))
                .find(|p| p.exists())
                .unwrap();
            std::os::unix::fs::symlink(real, no_perl.join(tool)).unwrap();
        }
        let big: Vec<u8> = (0..5_000_000u32).map(|i| (i * 13 % 241) as u8).collect();
        let (bytes, sent) = stream(&[("x/big", &big), ("y", b"tail")]);
        for (name, feed, path) in [
            ("pipe", Feed::Pipe, None),
            ("file", Feed::File, None),
            ("no perl", Feed::Pipe, Some(no_perl.as_path())),
        ] {
            let dir = d.path().join(name);
            let (out, err) = untar_with(&dir, &bytes, feed, path);
            assert_eq!(check_untar(&out, &err, sent), Ok(()), "{name}: {out} {err}");
            assert_eq!(std::fs::read(dir.join("x/big")).unwrap(), big, "{name}");
            assert_eq!(std::fs::read(dir.join("y")).unwrap(), b"tail", "{name}");
        }
    }

    #[test]
    fn the_far_side_sums_the_stream_as_this_side_does_and_unpacks_it() {
        let d = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (bytes, sent) = stream(&[("a/b/big", &big), ("small.txt", b"hello")]);
        let (out, err) = untar(&d.path().join("in"), &bytes);
        assert_eq!(check_untar(&out, &err, sent), Ok(()), "{out} {err}");
        assert_eq!(std::fs::read(d.path().join("in/a/b/big")).unwrap(), big);
        // trailing bytes after the archive's end are summed too (tar leaves them unread)
        let mut longer = bytes.clone();
        longer.resize(longer.len() + 100_000, 0);
        let (out, err) = untar(&d.path().join("in2"), &longer);
        assert!(
            matches!(check_untar(&out, &err, sent), Err(UntarOutcome::Differs(_))),
            "{out}"
        );
    }

    #[test]
    fn a_stream_changed_on_the_way_is_refused_though_tar_unpacks_it() {
        let d = tempfile::tempdir().unwrap();
        let (mut bytes, sent) = stream(&[("f", &[7u8; 4000])]);
        bytes[600] ^= 0x01; // in the file's data: tar cannot tell
        let (out, err) = untar(&d.path().join("in"), &bytes);
        assert!(out.contains("tar 0"), "{out}");
        let e = check_untar(&out, &err, sent).unwrap_err();
        assert!(
            matches!(&e, UntarOutcome::Differs(m) if m.contains("were sent")),
            "{e:?}"
        );
    }

    #[test]
    fn a_failed_tar_and_a_silent_far_side_are_told_apart() {
        let d = tempfile::tempdir().unwrap();
        let (out, err) = untar(&d.path().join("in"), b"not a tar archive at all");
        match check_untar(&out, &err, (1, 1)).unwrap_err() {
            UntarOutcome::TarFailed { code, stderr } => {
                assert_ne!(code, 0);
                assert!(stderr.contains("tar"), "{stderr}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            check_untar("", "sh: tee: not found", (1, 1)),
            Err(UntarOutcome::Unreadable(m)) if m.contains("tee: not found")
        ));
    }
}
