//! BIOMERO's result options that are attachments, done after the import
//! through OMERO.web's webclient with biomero-stage's own OMERO account:
//!
//! - `1) Zip attachment to parent`: the kept results, zipped as
//!   `<submission>_out.zip`, on the Datasets and Plates the inputs came from
//!   (else on the Dataset or Screen the results were imported into);
//! - `2) Attach to original images`: each result image file on the image it was
//!   made from, named as BIOMERO names it (`<stem>.<submission>.<ext>`);
//! - `5) Attach individual non-image output files`: every other output file
//!   (tables, logs) on the inputs' Datasets and Plates;
//! - `4) Upload result CSVs as OMERO tables` in hand-off mode: the CSV files, as
//!   files on the inputs' Datasets and Plates (an OMERO.table needs OMERO's own
//!   API: the attended OMERO script makes them in the user's session instead).
//!
//! Each attachment is made once: a file of that name already on the object
//! is not attached again, so a step that is retried or resumed after a crash
//! does not duplicate what it did. What cannot be attached (a Zarr result is a
//! folder, an input from the storage has no OMERO parent) is said, not skipped
//! silently.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use stage_results::classify::ItemKind;
use stage_results::keep::ResultManifest;
use stage_source::Plan;
use stage_source::omero::UserSession;

use crate::intake::AttachOptions;

/// One attachment to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// Which option asked for it (`1)`, `2)`, `5)`).
    pub option: &'static str,
    /// The file (a path in the kept results; the zip is made first).
    pub file: Source,
    /// Its name in OMERO.
    pub name: String,
    /// Its MIME type.
    pub mime: String,
    /// The objects it goes on: `(webclient kind, id)`.
    pub targets: Vec<(&'static str, i64)>,
}

/// Where an attachment's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file of the kept results, relative to their folder.
    Kept(String),
    /// The kept results, zipped.
    Zip,
}

/// One attachment made (or found made).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attached {
    /// The option.
    pub option: String,
    /// Its name in OMERO.
    pub name: String,
    /// The objects, as `kind:id`.
    pub targets: Vec<String>,
    /// The FileAnnotation (`None`: it was there already).
    pub annotation: Option<i64>,
}

/// Why attaching did not finish.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// OMERO is not reachable or not configured: tried again later.
    #[error("{0}")]
    Transient(String),
    /// It will not work as configured.
    #[error("{0}")]
    Permanent(String),
}

fn mime_of(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let ext = lower.rsplit('.').next().unwrap_or_default();
    match ext {
        "tif" | "tiff" => "image/tiff",
        "png" => "image/png",
        "csv" => "text/csv",
        "txt" | "log" | "out" => "text/plain",
        "json" => "application/json",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
    .to_owned()
}

/// Whether a result file is a table BIOMERO makes an OMERO.table of (`.csv`, as its
/// `SUPPORTED_TABLE_EXTENSIONS`).
#[allow(clippy::case_sensitive_file_extension_comparisons)] // as BIOMERO's `f.endswith(ext)`
pub fn is_table(path: &str) -> bool {
    path.ends_with(".csv")
}

/// `<stem>.<submission>.<ext>`: BIOMERO puts its run's id before the first dot of a result
/// it attaches to an image (`saveImagesToOmeroAsAttachments`).
pub fn tagged_name(file: &str, submission: &str) -> String {
    match file.find('.') {
        Some(dot) => format!("{}.{submission}{}", &file[..dot], &file[dot..]),
        None => format!("{file}.{submission}"),
    }
}

/// The inputs' OMERO parents: their Datasets and Plates.
fn parents(plan: &Plan) -> Vec<(&'static str, i64)> {
    let mut out: Vec<(&'static str, i64)> = plan
        .images
        .iter()
        .filter_map(|i| i.origin.dataset_id.map(|d| ("dataset", d)))
        .chain(
            plan.plates
                .iter()
                .filter_map(|p| p.origin.plate_id.map(|d| ("plate", d))),
        )
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// What the options ask to attach, and what cannot be attached (each saying why). The
/// "parent" of `1)` and `5)` is what the inputs came from (their Datasets and Plates), else
/// `destination`, the Dataset or Screen the results were imported into.
pub fn plan(
    options: &AttachOptions,
    submission: &str,
    plan: &Plan,
    m: &ResultManifest,
    destination: &[(&'static str, i64)],
) -> (Vec<Planned>, Vec<String>) {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    let mut parents = parents(plan);
    if parents.is_empty() {
        parents = destination.to_vec();
    }
    let file_name = |p: &str| p.rsplit('/').next().unwrap_or(p).to_owned();
    if options.zip_to_parent {
        if parents.is_empty() {
            notes.push("`1) Zip attachment to parent`: the inputs have no OMERO Dataset or Plate to attach the zip to".into());
        } else {
            out.push(Planned {
                option: "1)",
                file: Source::Zip,
                name: format!("{submission}_out.zip"),
                mime: "application/zip".into(),
                targets: parents.clone(),
            });
        }
    }
    if options.to_original_images {
        for item in m
            .items
            .iter()
            .filter(|i| matches!(i.kind, ItemKind::ImageFile | ItemKind::ZarrImage))
        {
            let original = item.input.as_ref().and_then(|input| {
                plan.images
                    .iter()
                    .find(|i| i.output == *input)
                    .and_then(|i| i.origin.image_id)
            });
            match (item.kind, original) {
                (ItemKind::ZarrImage, _) => notes.push(format!(
                    "`2) Attach to original images`: {} is an OME-Zarr folder, not a file; it is imported, not attached",
                    item.path
                )),
                (_, None) => notes.push(format!(
                    "`2) Attach to original images`: {} matches no OMERO input image",
                    item.path
                )),
                (_, Some(image)) => {
                    let name = tagged_name(&file_name(&item.path), submission);
                    out.push(Planned {
                        option: "2)",
                        file: Source::Kept(item.path.clone()),
                        mime: mime_of(&name),
                        name,
                        targets: vec![("image", image)],
                    });
                }
            }
        }
    }
    // `5)` attaches every other file, the CSV files among them; `4)` alone only the CSVs
    let (option, key, which): (&'static str, &str, fn(&str) -> bool) = if options.other_files {
        ("5)", "5) Attach individual non-image output files", |_| {
            true
        })
    } else {
        ("4)", "4) Upload result CSVs as OMERO tables", is_table)
    };
    if options.other_files || options.tables_as_files {
        let files: Vec<&str> = m
            .items_of(ItemKind::Attachment)
            .map(|i| i.path.as_str())
            .filter(|p| which(p))
            .collect();
        if parents.is_empty() && !files.is_empty() {
            notes.push(format!("`{key}`: the inputs have no OMERO Dataset or Plate to attach them to; they stay in the kept results"));
        } else {
            for path in files {
                let name = file_name(path);
                out.push(Planned {
                    option,
                    file: Source::Kept(path.to_owned()),
                    mime: mime_of(&name),
                    name,
                    targets: parents.clone(),
                });
            }
        }
    }
    (out, notes)
}

/// Zips the kept results folder `dir` (the manifest included) into `to`, streaming file
/// by file; a half-written zip never has the final name.
pub fn zip_results(dir: &Path, files: &[String], to: &Path) -> std::io::Result<()> {
    use std::io::Write as _;
    let partial = to.with_extension("zip.partial");
    let out = std::fs::File::create(&partial)?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(out));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1))
        .large_file(true);
    for rel in files
        .iter()
        .map(String::as_str)
        .chain([stage_results::keep::MANIFEST])
    {
        zip.start_file(rel, opts).map_err(std::io::Error::other)?;
        let mut f = std::fs::File::open(dir.join(rel))?;
        std::io::copy(&mut f, &mut zip)?;
    }
    zip.finish().map_err(std::io::Error::other)?.flush()?;
    std::fs::rename(&partial, to)
}

/// Makes the attachments `todo` with `session`; `work` holds the zip while it is uploaded.
pub async fn attach(
    session: &UserSession,
    todo: &[Planned],
    m: &ResultManifest,
    work: &Path,
) -> Result<Vec<Attached>, AttachError> {
    let mut done = Vec::new();
    for a in todo {
        let first = a.targets[0];
        let there = session
            .attached_file_names(first.0, first.1)
            .await
            .map_err(|e| AttachError::Transient(e.to_string()))?;
        let targets: Vec<String> = a
            .targets
            .iter()
            .map(|(k, id)| format!("{k}:{id}"))
            .collect();
        if there.contains(&a.name) {
            done.push(Attached {
                option: a.option.to_owned(),
                name: a.name.clone(),
                targets,
                annotation: None,
            });
            continue;
        }
        let path: PathBuf = match &a.file {
            Source::Kept(rel) => m.dir.join(rel),
            Source::Zip => {
                let to = work.join(&a.name);
                let (dir, files, to2) = (
                    m.dir.clone(),
                    m.files.iter().map(|f| f.path.clone()).collect::<Vec<_>>(),
                    to.clone(),
                );
                std::fs::create_dir_all(work)
                    .map_err(|e| AttachError::Permanent(format!("{}: {e}", work.display())))?;
                tokio::task::spawn_blocking(move || zip_results(&dir, &files, &to2))
                    .await
                    .map_err(|e| AttachError::Transient(e.to_string()))?
                    .map_err(|e| {
                        AttachError::Permanent(format!(
                            "zipping the results into {}: {e}",
                            to.display()
                        ))
                    })?;
                to
            }
        };
        let id = session
            .attach_file(&a.targets, &path, &a.name, &a.mime)
            .await
            .map_err(|e| match e {
                stage_source::omero::SessionError::Unavailable { .. } => {
                    AttachError::Transient(e.to_string())
                }
                other => AttachError::Permanent(format!(
                    "attaching {} to {}: {other}",
                    a.name,
                    targets.join(", ")
                )),
            })?;
        if matches!(a.file, Source::Zip) {
            let _ = std::fs::remove_file(&path);
        }
        tracing::info!(option = a.option, name = %a.name, targets = ?targets, annotation = id, "attached in OMERO");
        done.push(Attached {
            option: a.option.to_owned(),
            name: a.name.clone(),
            targets,
            annotation: Some(id),
        });
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_images_are_named_as_biomero_names_them() {
        assert_eq!(
            tagged_name("img_1_cp_masks.tif", "r-1"),
            "img_1_cp_masks.r-1.tif"
        );
        assert_eq!(tagged_name("a.ome.tiff", "r-1"), "a.r-1.ome.tiff");
        assert_eq!(tagged_name("README", "r-1"), "README.r-1");
        assert_eq!(mime_of("x.CSV"), "text/csv");
        assert_eq!(mime_of("x.bin"), "application/octet-stream");
    }

    fn plan_and_results() -> (Plan, ResultManifest) {
        #![allow(clippy::unwrap_used)]
        let plan = serde_json::from_value(serde_json::json!({
            "version": 1, "ngff_version": "0.4", "bytes": 2, "notes": [], "plates": [],
            "images": [{"output": "a.tif", "format": "tiff", "name": "a", "bytes": 2,
                        "source": {"kind": "zarr", "path": "/d/a.ome.zarr"},
                        "origin": {"image_id": 201, "dataset_id": 51}}]
        }))
        .unwrap();
        let m = serde_json::from_value(serde_json::json!({
            "format": 1, "submission": "r-1", "workflow": "w", "kept_at": "", "dir": "/k",
            "bytes": 3, "files": [],
            "items": [{"path": "a.tif", "kind": "image-file", "input": "a.tif"},
                      {"path": "counts.csv", "kind": "attachment"},
                      {"path": "log.txt", "kind": "attachment"},
                      {"path": "upper.CSV", "kind": "attachment"}]
        }))
        .unwrap();
        (plan, m)
    }

    #[test]
    fn hand_off_tables_are_the_csv_files_attached_and_5_attaches_them_once() {
        let (p, m) = plan_and_results();
        let only_tables = AttachOptions {
            tables_as_files: true,
            ..AttachOptions::default()
        };
        let (todo, notes) = plan(&only_tables, "r-1", &p, &m, &[]);
        assert!(notes.is_empty(), "{notes:?}");
        let names: Vec<(&str, &str)> = todo.iter().map(|a| (a.option, a.name.as_str())).collect();
        // BIOMERO's `SUPPORTED_TABLE_EXTENSIONS` is `.csv`, matched as written
        assert_eq!(names, [("4)", "counts.csv")]);
        assert_eq!(todo[0].targets, [("dataset", 51)]);
        assert_eq!(todo[0].mime, "text/csv");
        let both = AttachOptions {
            other_files: true,
            ..only_tables
        };
        let (todo, _) = plan(&both, "r-1", &p, &m, &[]);
        let names: Vec<(&str, &str)> = todo.iter().map(|a| (a.option, a.name.as_str())).collect();
        assert_eq!(
            names,
            [("5)", "counts.csv"), ("5)", "log.txt"), ("5)", "upper.CSV")]
        );
    }
}
