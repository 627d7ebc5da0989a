//! Permanent storage: a job's checked outputs kept under
//! `<group folder>/.analyzed/<submission>/<YYYYMMDD_HHMMSS>/` with a manifest.
//!
//! The results are assembled in a hidden `.<stamp>.partial` folder beside the
//! final one (hard links to the downloaded files where the filesystem allows,
//! copies otherwise), made importable there (label images renamed, 0.5
//! re-encoded to 0.4), listed with SHA-256 checksums into
//! `biomero-stage-results.json`, and only then renamed to `<stamp>`: a partial
//! result never looks complete, and a run interrupted at any point starts the
//! partial folder again from the untouched download. A second run for the
//! same submission finds the kept result and returns its manifest.

use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use stage_ngff::NgffVersion;

use crate::classify::{self, Item, ItemKind};
use crate::error::{Result, ResultsError};
use crate::plate_check::{self, PlateComparison};
use crate::safety::{self, Limits};
use crate::{labels, reencode};

/// The manifest's file name inside a kept result.
pub const MANIFEST: &str = "biomero-stage-results.json";

/// One kept file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptFile {
    /// Path relative to the result folder.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256, lowercase hex (`sha256sum -c` can check it).
    pub sha256: String,
}

/// What was kept, written as `biomero-stage-results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultManifest {
    /// Manifest format (1).
    pub format: u32,
    /// The submission.
    pub submission: String,
    /// The workflow.
    pub workflow: String,
    /// When the result was kept (RFC 3339, UTC).
    pub kept_at: String,
    /// The result folder.
    pub dir: PathBuf,
    /// Total bytes.
    pub bytes: u64,
    /// Every file (the manifest itself excluded).
    pub files: Vec<KeptFile>,
    /// Plates, images, image files and attachments.
    pub items: Vec<Item>,
    /// Returned plates compared with the staged ones.
    #[serde(default)]
    pub plates: Vec<PlateComparison>,
    /// Things a person should know (an incomplete plate, a re-encoded store).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Why a kept result manifest cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file is gone or unreadable.
    #[error(
        "the result manifest {path} cannot be read ({source}); the kept results were moved or removed"
    )]
    Gone {
        /// The manifest.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a manifest.
    #[error("the result manifest {path}: {source}")]
    Damaged {
        /// The manifest.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
}

impl ResultManifest {
    /// Reads the manifest kept at `path`.
    pub fn read(path: &Path) -> std::result::Result<Self, ManifestError> {
        let text = std::fs::read(path).map_err(|source| ManifestError::Gone {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|source| ManifestError::Damaged {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Items of `kind`.
    pub fn items_of(&self, kind: ItemKind) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(move |i| i.kind == kind)
    }
}

/// What [`keep`] needs.
#[derive(Debug, Clone)]
pub struct KeepRequest<'a> {
    /// The downloaded `data/out`.
    pub outputs: &'a Path,
    /// The folder holding the group folders (`results_dir`): nothing is kept outside it.
    pub root: &'a Path,
    /// `<group folder>/.analyzed/<submission>`, under `root`.
    pub analyzed: &'a Path,
    /// The submission id.
    pub submission: &'a str,
    /// The workflow key.
    pub workflow: &'a str,
    /// The staged inputs' folder (`data/in`), for plate comparisons.
    pub staged: &'a Path,
    /// Names of the staged inputs.
    pub staged_inputs: Vec<String>,
    /// For staged inputs that are OMERO images or plates: the name BIOMERO's result scripts
    /// see as the original (the image's name; `getOriginalFilename` of the staged name),
    /// `{original_file}` and `{original_ext}` of the rename pattern.
    pub original_names: std::collections::BTreeMap<String, String>,
    /// Output limits.
    pub limits: Limits,
    /// The NGFF version the site's OMERO reads.
    pub omero_ngff: NgffVersion,
    /// Whether the workflow must return at least one image (Zarr workflows).
    pub expect_images: bool,
    /// BIOMERO's `3c)` rename pattern for the result images ([`crate::rename`]).
    pub rename: Option<String>,
}

/// The kept result of `submission` under `analyzed`, if one is complete.
pub fn find_kept(analyzed: &Path, submission: &str) -> Result<Option<ResultManifest>> {
    let entries = match std::fs::read_dir(analyzed) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ResultsError::io(analyzed, e)),
    };
    let mut found: Vec<ResultManifest> = Vec::new();
    for e in entries.filter_map(std::result::Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let m = match ResultManifest::read(&e.path().join(MANIFEST)) {
            Ok(m) => m,
            Err(ManifestError::Gone { .. }) => continue,
            Err(damaged) => return Err(ResultsError::Invalid(damaged.to_string())),
        };
        if m.submission == submission {
            found.push(m);
        }
    }
    found.sort_by(|a, b| a.kept_at.cmp(&b.kept_at));
    Ok(found.pop())
}

/// Checks, assembles and keeps the outputs (see the module doc).
pub fn keep(req: &KeepRequest<'_>) -> Result<ResultManifest> {
    safety::confined_destination(req.root, req.analyzed)?;
    if let Some(m) = find_kept(req.analyzed, req.submission)? {
        return Ok(m);
    }
    // a partial folder left by a killed run holds hard links to the download: remove it
    // before the download is checked, or its files would count as hard-linked outputs
    if req.analyzed.is_dir() {
        sweep_partials(req.analyzed)?;
    }
    let inventory = safety::scan(req.outputs, &req.limits)?;
    if inventory.files.is_empty() {
        return Err(ResultsError::Useless(format!(
            "the job exited successfully but wrote nothing to data/out ({}); check the workflow's log",
            req.outputs.display()
        )));
    }
    std::fs::create_dir_all(req.analyzed).map_err(|e| ResultsError::io(req.analyzed, e))?;
    // again, now that every folder exists: a link swapped in meanwhile is caught here
    safety::confined_destination(req.root, req.analyzed)?;
    let now = chrono::Utc::now();
    let stamp = now.format("%Y%m%d_%H%M%S").to_string();
    let partial = req.analyzed.join(format!(".{stamp}.partial"));
    let assembled = link_or_copy(req.outputs, &partial, &inventory)
        .and_then(|()| assemble(req, &partial, &stamp, now));
    if assembled.is_err() {
        // nothing half-made stays behind; the download is untouched for the next run
        let _ = std::fs::remove_dir_all(&partial);
    }
    assembled
}

fn assemble(
    req: &KeepRequest<'_>,
    partial: &Path,
    stamp: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<ResultManifest> {
    let mut items = classify::classify(partial)?;
    classify::match_inputs(&mut items, &req.staged_inputs);
    let mut notes = Vec::new();
    if let Some(pattern) = &req.rename {
        for r in crate::rename::apply(partial, &mut items, pattern, &req.original_names)? {
            notes.push(format!("renamed {r}"));
        }
    }
    let mut plates = Vec::new();
    for item in items
        .iter_mut()
        .filter(|i| matches!(i.kind, ItemKind::Plate | ItemKind::ZarrImage))
    {
        let store = partial.join(&item.path);
        if item.kind == ItemKind::Plate
            && let Some(input) = &item.input
            && req.staged.join(input).is_dir()
        {
            let c = plate_check::compare(&store, &item.path, &req.staged.join(input), input)?;
            if !c.is_complete() {
                notes.push(c.summary());
            }
            plates.push(c);
        }
        let found = labels::make_importable(&store)?;
        item.labels = found
            .iter()
            .filter_map(|p| p.strip_prefix(partial).ok())
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        if reencode::to_version(&store, req.omero_ngff)? {
            notes.push(format!(
                "{} was NGFF {} and is re-encoded to {} (what the site's OMERO reads)",
                item.path,
                item.ngff.as_deref().unwrap_or("?"),
                req.omero_ngff
            ));
            item.ngff = Some(req.omero_ngff.to_string());
        }
    }
    let images = items
        .iter()
        .filter(|i| i.kind != ItemKind::Attachment)
        .count();
    if req.expect_images && images == 0 {
        let names: Vec<&str> = items.iter().map(|i| i.path.as_str()).take(10).collect();
        return Err(ResultsError::Useless(format!(
            "the job exited successfully but returned no image (workflow `{}` returns Zarr images or plates); data/out holds only: {}",
            req.workflow,
            names.join(", ")
        )));
    }

    let final_inv = safety::inventory(partial)?;
    let files = checksums(partial, &final_inv.files)?;
    let dir = unique(req.analyzed, stamp);
    let manifest = ResultManifest {
        format: 1,
        submission: req.submission.to_owned(),
        workflow: req.workflow.to_owned(),
        kept_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        dir: dir.clone(),
        bytes: files.iter().map(|f| f.bytes).sum(),
        files,
        items,
        plates,
        notes,
    };
    let text = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| ResultsError::Invalid(format!("the result manifest: {e}")))?;
    let mpath = partial.join(MANIFEST);
    std::fs::write(&mpath, text).map_err(|e| ResultsError::io(&mpath, e))?;
    sync_dir(partial);
    std::fs::rename(partial, &dir).map_err(|e| ResultsError::io(&dir, e))?;
    sync_dir(req.analyzed);
    Ok(manifest)
}

fn unique(parent: &Path, stamp: &str) -> PathBuf {
    let mut dir = parent.join(stamp);
    let mut n = 2;
    while dir.exists() {
        dir = parent.join(format!("{stamp}_{n}"));
        n += 1;
    }
    dir
}

fn sweep_partials(analyzed: &Path) -> Result<()> {
    for e in std::fs::read_dir(analyzed)
        .map_err(|e| ResultsError::io(analyzed, e))?
        .filter_map(std::result::Result::ok)
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(".partial") {
            std::fs::remove_dir_all(e.path()).map_err(|er| ResultsError::io(e.path(), er))?;
        }
    }
    Ok(())
}

fn link_or_copy(from: &Path, to: &Path, inv: &safety::Inventory) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| ResultsError::io(to, e))?;
    inv.files.par_iter().try_for_each(|f| -> Result<()> {
        let (src, dst) = (from.join(&f.path), to.join(&f.path));
        if let Some(p) = dst.parent() {
            std::fs::create_dir_all(p).map_err(|e| ResultsError::io(p, e))?;
        }
        if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst).map_err(|e| ResultsError::io(&dst, e))?;
        }
        let got = std::fs::metadata(&dst)
            .map_err(|e| ResultsError::io(&dst, e))?
            .len();
        if got != f.bytes {
            return Err(ResultsError::Invalid(format!(
                "{}: {} bytes kept, {} downloaded",
                dst.display(),
                got,
                f.bytes
            )));
        }
        Ok(())
    })
}

fn checksums(root: &Path, files: &[safety::FileEntry]) -> Result<Vec<KeptFile>> {
    files
        .par_iter()
        .map(|f| {
            let path = root.join(&f.path);
            let mut file = std::fs::File::open(&path).map_err(|e| ResultsError::io(&path, e))?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 1 << 16];
            let mut bytes = 0u64;
            loop {
                let n = file
                    .read(&mut buf)
                    .map_err(|e| ResultsError::io(&path, e))?;
                if n == 0 {
                    break;
                }
                bytes += n as u64;
                h.update(&buf[..n]);
            }
            Ok(KeptFile {
                path: f.path.clone(),
                bytes,
                sha256: format!("{:x}", h.finalize()),
            })
        })
        .collect()
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
