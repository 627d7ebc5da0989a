//! OMERO's own exporter, the last source of an OMERO image's pixels: for formats
//! biomero-stage does not read (CZI, ND2, LIF, vendor HCS formats…) on a site
//! without omero-ms-pixel-buffer, a configured command in the style of
//! BIOMERO's export — omero-cli-zarr's `omero zarr export Image:<id>` in the
//! OMERO host's Python environment — writes an OME-Zarr that is then read like
//! any other.
//!
//! The command is an argument list (never a shell line) whose placeholders are
//! filled per image: `{server}` (the OMERO server), `{session}` (a session of
//! the daemon's own OMERO account), `{group}` (the submission's group, so the
//! export acts in it), `{image}`, `{output}` (an empty folder of its own) and
//! `{format}` (`0.4` / `0.5`). It runs as a child process in a process group
//! of its own, at most `concurrency` at a time across the daemon, within
//! `timeout`; every line it prints is handed on (the session key blotted out),
//! and its last lines explain a failure. What it wrote counts only when it
//! exited 0 and our reader accepts the store as the image OMERO describes; it
//! is then renamed into place, so a half-written export never counts.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use stage_ngff::{ImageReader, NgffVersion};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Semaphore;

use crate::plan::OmeroPixels;

/// How the exporter is run (`omero_export_*` settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportConfig {
    /// The command and its arguments, with placeholders.
    pub command: Vec<String>,
    /// The OMERO server the exporter connects to (`host` or `host:port`), as `{server}`.
    pub server: String,
    /// The longest one export may take.
    pub timeout: Duration,
    /// Exports running at once, across the daemon.
    pub concurrency: usize,
}

/// The placeholders a command may use.
pub const PLACEHOLDERS: [&str; 6] = [
    "{server}",
    "{session}",
    "{group}",
    "{image}",
    "{output}",
    "{format}",
];

/// How many of its last lines a failed export's error quotes.
const TAIL_LINES: usize = 12;

/// Why an export did not give a usable store.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The command could not be started.
    #[error(
        "the OMERO exporter `{program}` could not be started: {reason}; check omero_export_command (it runs in the OMERO host's Python environment)"
    )]
    Start {
        /// The program.
        program: String,
        /// What the system said.
        reason: String,
    },
    /// It ran out of time and was killed.
    #[error(
        "exporting Image {image} with OMERO's exporter took longer than {secs} s and was stopped; raise omero_export_timeout_secs for images this large. Its last lines:\n{tail}"
    )]
    Timeout {
        /// The image.
        image: i64,
        /// The limit.
        secs: u64,
        /// Its last lines.
        tail: String,
    },
    /// It failed.
    #[error("OMERO's exporter failed on Image {image} ({status}). Its last lines:\n{tail}")]
    Failed {
        /// The image.
        image: i64,
        /// How it ended.
        status: String,
        /// Its last lines.
        tail: String,
    },
    /// It exited 0 but what it wrote is not the image.
    #[error(
        "OMERO's exporter said it exported Image {image}, but {reason}; nothing of it is used. Its last lines:\n{tail}"
    )]
    Unusable {
        /// The image.
        image: i64,
        /// What is wrong.
        reason: String,
        /// Its last lines.
        tail: String,
    },
    /// A local file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
}

/// One image to export.
#[derive(Debug, Clone, Copy)]
pub struct ExportRequest<'a> {
    /// The OMERO image.
    pub image: i64,
    /// Its pixels as OMERO describes them (the export must hold exactly these).
    pub pixels: &'a OmeroPixels,
    /// The submission's OMERO group.
    pub group: &'a str,
    /// A session key of the daemon's OMERO account.
    pub session: &'a str,
    /// The NGFF version to ask for.
    pub format: NgffVersion,
    /// The folder exports of this submission go to.
    pub dir: &'a Path,
}

/// The exporter, shared by every submission of a daemon (its concurrency is the daemon's).
#[derive(Debug)]
pub struct Exporter {
    cfg: ExportConfig,
    permits: Arc<Semaphore>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Exporter {
    /// An exporter for `cfg`.
    pub fn new(cfg: ExportConfig) -> Self {
        let permits = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
        Exporter { cfg, permits }
    }

    /// The configuration.
    pub fn config(&self) -> &ExportConfig {
        &self.cfg
    }

    /// Where the export of `image` is kept in `dir` once complete.
    pub fn store_path(dir: &Path, image: i64) -> PathBuf {
        dir.join(format!("{image}.ome.zarr"))
    }

    /// The command line for `req` with its output in `output`.
    fn argv(&self, req: &ExportRequest<'_>, output: &Path) -> Vec<String> {
        let format = match req.format {
            NgffVersion::V04 => "0.4",
            NgffVersion::V05 => "0.5",
        };
        self.cfg
            .command
            .iter()
            .map(|a| {
                a.replace("{server}", &self.cfg.server)
                    .replace("{session}", req.session)
                    .replace("{group}", req.group)
                    .replace("{image}", &req.image.to_string())
                    .replace("{output}", &output.to_string_lossy())
                    .replace("{format}", format)
            })
            .collect()
    }

    /// Exports `req.image` (or finds its finished export from an earlier attempt) and
    /// returns the store; every line the command prints goes to `line`.
    pub async fn export(
        &self,
        req: &ExportRequest<'_>,
        line: &(dyn Fn(String) + Send + Sync),
    ) -> Result<PathBuf, ExportError> {
        let store = Self::store_path(req.dir, req.image);
        if store.exists() {
            return Ok(store);
        }
        tokio::fs::create_dir_all(req.dir)
            .await
            .map_err(io(req.dir))?;
        let work = req.dir.join(format!(
            ".export-{}.partial-{}",
            req.image,
            std::process::id()
        ));
        remove_leftovers(req.dir, req.image).await?;
        tokio::fs::create_dir_all(&work).await.map_err(io(&work))?;
        let _permit = self.permits.acquire().await;
        let outcome = self.run(req, &work, line).await;
        let result = match outcome {
            Ok(tail) => accept(req, &work, &store, &tail),
            Err(e) => Err(e),
        };
        let _ = tokio::fs::remove_dir_all(&work).await;
        result
    }

    /// Runs the command; its last lines when it exited 0.
    async fn run(
        &self,
        req: &ExportRequest<'_>,
        work: &Path,
        line: &(dyn Fn(String) + Send + Sync),
    ) -> Result<Vec<String>, ExportError> {
        let argv = self.argv(req, work);
        let Some((program, args)) = argv.split_first() else {
            return Err(ExportError::Start {
                program: String::new(),
                reason: "omero_export_command is empty".into(),
            });
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .current_dir(work)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| ExportError::Start {
            program: program.clone(),
            reason: e.to_string(),
        })?;
        let pgid = child.id();
        tracing::info!(image = req.image, program = %program, "OMERO export started");
        let session = req.session.to_owned();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ]
        .into_iter()
        .flatten()
        {
            let (tx, session) = (tx.clone(), session.clone());
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    let l = if session.is_empty() {
                        l
                    } else {
                        l.replace(&session, "***")
                    };
                    if tx.send(l).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
        let keep = |l: String, tail: &mut std::collections::VecDeque<String>| {
            line(l.clone());
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(l);
        };
        let deadline = tokio::time::sleep(self.cfg.timeout);
        tokio::pin!(deadline);
        let status = loop {
            tokio::select! {
                l = rx.recv() => match l {
                    Some(l) => keep(l, &mut tail),
                    None => {
                        // both streams closed: wait for the exit within the same deadline
                        tokio::select! {
                            s = child.wait() => break s,
                            () = &mut deadline => break Err(std::io::Error::from(std::io::ErrorKind::TimedOut)),
                        }
                    }
                },
                s = child.wait() => {
                    // the streams may still hold lines: take them, until they close or go
                    // quiet (a child of the exporter may hold them open)
                    while let Ok(Some(l)) =
                        tokio::time::timeout(Duration::from_millis(500), rx.recv()).await
                    {
                        keep(l, &mut tail);
                    }
                    break s;
                }
                () = &mut deadline => break Err(std::io::Error::from(std::io::ErrorKind::TimedOut)),
            }
        };
        let joined = |tail: &std::collections::VecDeque<String>| {
            if tail.is_empty() {
                "(it printed nothing)".to_owned()
            } else {
                tail.iter().cloned().collect::<Vec<_>>().join("\n")
            }
        };
        match status {
            Ok(s) if s.success() => Ok(tail.into_iter().collect()),
            Ok(s) => Err(ExportError::Failed {
                image: req.image,
                status: s.code().map_or_else(
                    || "killed by a signal".to_owned(),
                    |c| format!("exit code {c}"),
                ),
                tail: joined(&tail),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                kill_group(pgid);
                let _ = child.wait().await;
                Err(ExportError::Timeout {
                    image: req.image,
                    secs: self.cfg.timeout.as_secs(),
                    tail: joined(&tail),
                })
            }
            Err(e) => {
                kill_group(pgid);
                Err(ExportError::Failed {
                    image: req.image,
                    status: format!("could not be waited for: {e}"),
                    tail: joined(&tail),
                })
            }
        }
    }
}

/// Kills process group `pgid` (the exporter and everything it started).
fn kill_group(pgid: Option<u32>) {
    if let Some(pid) = pgid
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// Removes what an interrupted export of `image` left in `dir`.
async fn remove_leftovers(dir: &Path, image: i64) -> Result<(), ExportError> {
    let prefix = format!(".export-{image}.partial-");
    let mut rd = tokio::fs::read_dir(dir).await.map_err(io(dir))?;
    while let Some(e) = rd.next_entry().await.map_err(io(dir))? {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let p = e.path();
            tracing::info!(path = %p.display(), "removing what an interrupted export left");
            tokio::fs::remove_dir_all(&p).await.map_err(io(&p))?;
        }
    }
    Ok(())
}

/// Checks what the exporter wrote in `work` (`<image>.ome.zarr`, or `<image>.zarr` as older
/// omero-cli-zarr names it) and renames it to `store`.
fn accept(
    req: &ExportRequest<'_>,
    work: &Path,
    store: &Path,
    tail: &[String],
) -> Result<PathBuf, ExportError> {
    let unusable = |reason: String| ExportError::Unusable {
        image: req.image,
        reason,
        tail: if tail.is_empty() {
            "(it printed nothing)".to_owned()
        } else {
            tail.join("\n")
        },
    };
    let written = [
        work.join(format!("{}.ome.zarr", req.image)),
        work.join(format!("{}.zarr", req.image)),
    ]
    .into_iter()
    .find(|p| p.is_dir())
    .ok_or_else(|| {
        let found: Vec<String> = std::fs::read_dir(work)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        unusable(format!(
            "it wrote no {id}.ome.zarr (nor {id}.zarr) in its output folder (found: {})",
            if found.is_empty() {
                "nothing".to_owned()
            } else {
                found.join(", ")
            },
            id = req.image
        ))
    })?;
    let img = ImageReader::open(&written)
        .map_err(|e| unusable(format!("the store it wrote cannot be read: {e}")))?;
    let px = req.pixels;
    if img.sizes() != px.sizes || img.dtype != px.dtype {
        return Err(unusable(format!(
            "the store holds {} {} pixels where OMERO describes {} {}",
            img.sizes(),
            img.dtype,
            px.sizes,
            px.dtype
        )));
    }
    let absent = stage_ngff::inspect::absent_chunks(&img, 0);
    if absent > 0 {
        tracing::info!(
            image = req.image,
            absent,
            "the export has chunk files absent at full resolution (read as 0)"
        );
    }
    std::fs::rename(&written, store).map_err(io(store))?;
    Ok(store.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use stage_ngff::{PixelType, Sizes};

    fn pixels() -> OmeroPixels {
        OmeroPixels {
            sizes: Sizes {
                t: 1,
                c: 1,
                z: 1,
                y: 8,
                x: 8,
            },
            dtype: PixelType::Uint8,
            physical_zyx_um: [None; 3],
            channels: Vec::new(),
            colors: Vec::new(),
            windows: Vec::new(),
        }
    }

    fn exporter(command: &[&str], timeout_ms: u64) -> Exporter {
        Exporter::new(ExportConfig {
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            server: "omero.example:4064".into(),
            timeout: Duration::from_millis(timeout_ms),
            concurrency: 1,
        })
    }

    /// Placeholders are filled per argument, never through a shell: a group name with
    /// spaces and shell syntax stays one argument, exactly as written.
    #[test]
    fn placeholders_fill_single_arguments() {
        let e = exporter(
            &[
                "omero",
                "zarr",
                "-s",
                "{server}",
                "-k",
                "{session}",
                "-g",
                "{group}",
                "export",
                "--output",
                "{output}",
                "--format",
                "{format}",
                "Image:{image}",
            ],
            1000,
        );
        let px = pixels();
        let req = ExportRequest {
            image: 42,
            pixels: &px,
            group: "Lab A; rm -rf /",
            session: "abc-123",
            format: NgffVersion::V04,
            dir: Path::new("/tmp/x"),
        };
        assert_eq!(
            e.argv(&req, Path::new("/tmp/x/work")),
            [
                "omero",
                "zarr",
                "-s",
                "omero.example:4064",
                "-k",
                "abc-123",
                "-g",
                "Lab A; rm -rf /",
                "export",
                "--output",
                "/tmp/x/work",
                "--format",
                "0.4",
                "Image:42"
            ]
        );
    }

    /// A failing command fails with its last lines, the session key blotted out; one that
    /// runs too long is killed with its whole process group; nothing is left behind.
    #[tokio::test]
    async fn failures_and_timeouts_say_why_and_leave_nothing() {
        let d = tempfile::tempdir().unwrap();
        let px = pixels();
        let req = ExportRequest {
            image: 7,
            pixels: &px,
            group: "g",
            session: "secret-key",
            format: NgffVersion::V04,
            dir: d.path(),
        };
        let lines = std::sync::Mutex::new(Vec::new());
        let seen = |l: String| lines.lock().unwrap().push(l);
        let failing = exporter(
            &[
                "sh",
                "-c",
                "echo joined session $0; echo broken >&2; exit 3",
                "{session}",
            ],
            5000,
        );
        let e = failing.export(&req, &seen).await.unwrap_err().to_string();
        assert!(e.contains("exit code 3") && e.contains("broken"), "{e}");
        assert!(!e.contains("secret-key") && e.contains("***"), "{e}");
        assert!(
            !lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("secret-key"))
        );
        // a child that outlives its parent is killed with the group
        let slow = exporter(&["sh", "-c", "sleep 30 & echo started; wait"], 300);
        let t = std::time::Instant::now();
        let e = slow.export(&req, &seen).await.unwrap_err().to_string();
        assert!(e.contains("longer than") && e.contains("started"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(10));
        let quiet = exporter(&["true"], 5000);
        let e = quiet.export(&req, &seen).await.unwrap_err().to_string();
        assert!(e.contains("wrote no 7.ome.zarr"), "{e}");
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            0,
            "nothing left behind"
        );
    }
}
