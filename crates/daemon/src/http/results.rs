//! `/api/v1/submissions/{id}/results`: what a submission brought home, for the attended OMERO
//! script that makes the OMERO.tables and ROIs in the user's session when the run has ended.
//!
//! - `GET …/results` describes the kept results: the tables (BIOMERO's `.csv`), every result
//!   image with the OMERO image it was made from, the importer orders (whose uuids find the
//!   imported images in OMERO, as BIOMERO's `SLURM_Import_Results.py` finds them), the Slurm
//!   job and the BIOMERO WorkflowRun id.
//! - `GET …/results/file?path=` gives one kept file's bytes, streamed. Only a file the result
//!   manifest lists is served, and never through a link: the path is confined to the kept
//!   folder.
//! - `POST …/results/made` records in the submission's history what the attended script made
//!   of them in OMERO (tables, ROIs) and what it could not make, as an `attended` note.

use std::path::{Component, Path as FsPath, PathBuf};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use stage_results::classify::ItemKind;
use stage_results::keep::{ManifestError, ResultManifest};
use stage_source::Plan;
use stage_store::Submission;

use super::ApiError;
use crate::pipeline::record::StepRecord;
use crate::pipeline::steps::attach::is_table;
use crate::pipeline::steps::collect::CollectRecord;
use crate::pipeline::steps::import::ImportRecord;
use crate::pipeline::steps::submit::SubmitRecord;
use crate::runtime::Runtime;

/// The submission and its kept results, or why there are none yet.
async fn kept(
    rt: &Runtime,
    id: &str,
) -> Result<(Submission, CollectRecord, ResultManifest), ApiError> {
    let s = rt.store.get(id).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no submission with id `{id}`"),
        )
    })?;
    let not_yet = || {
        ApiError::new(
            StatusCode::CONFLICT,
            "not_kept",
            format!(
                "submission `{id}` has no kept results (it is {}); ask again when it has been imported",
                s.state
            ),
        )
    };
    let collect = CollectRecord::read(&s).map_err(|_| not_yet())?;
    let path = collect.manifest.clone();
    let m = tokio::task::spawn_blocking(move || ResultManifest::read(&path))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("reading the result manifest: {e}"),
            )
        })?
        .map_err(|e| match e {
            ManifestError::Gone { .. } => {
                ApiError::new(StatusCode::GONE, "results_gone", e.to_string())
            }
            ManifestError::Damaged { .. } => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "results_damaged",
                e.to_string(),
            ),
        })?;
    Ok((s, collect, m))
}

/// The input image each staged output (`data/in` name) was made from: `(OMERO id, name)`.
fn sources(s: &Submission) -> std::collections::BTreeMap<String, (Option<i64>, String)> {
    Plan::read(s)
        .map(|p| {
            p.images
                .into_iter()
                .map(|i| (i.output, (i.origin.image_id, i.name)))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) async fn describe(
    State(rt): State<Runtime>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (s, collect, m) = kept(&rt, &id).await?;
    let sources = sources(&s);
    let source = |input: Option<&String>| {
        input
            .and_then(|i| sources.get(i))
            .map(|(image_id, name)| json!({ "image_id": image_id, "name": name }))
    };
    let mut images = Vec::new();
    for item in &m.items {
        if !matches!(item.kind, ItemKind::ImageFile | ItemKind::ZarrImage) {
            continue;
        }
        let src = source(item.input.as_ref());
        images.push(json!({ "path": item.path, "kind": item.kind, "source": src }));
        // a label image inside an OME-Zarr result, made from the same input
        for l in &item.labels {
            images.push(json!({ "path": l, "kind": "label", "source": src }));
        }
    }
    let tables: Vec<&str> = m
        .items_of(ItemKind::Attachment)
        .map(|i| i.path.as_str())
        .filter(|p| is_table(p))
        .collect();
    let (orders, import_state) = match ImportRecord::read(&s) {
        Ok(r) => (
            r.orders
                .iter()
                .map(|o| {
                    json!({
                        "uuid": o.uuid, "set": o.set,
                        "destination_type": o.destination_type, "destination_id": o.destination_id,
                        "file_names": o.file_names,
                    })
                })
                .collect(),
            r.stages
                .iter()
                .map(|st| json!({ "uuid": st.uuid, "stage": st.stage }))
                .collect(),
        ),
        Err(_) => (Vec::new(), Vec::new()),
    };
    let workflow_id = match crate::biomero::mirror::configured(&rt.config.current().slurm) {
        Ok(_) => Some(
            crate::biomero::tracking::workflow_run(&rt.store.identity().await?, &s).to_string(),
        ),
        Err(_) => None,
    };
    Ok(Json(json!({
        "submission": s.id,
        "state": s.state,
        "workflow": m.workflow,
        "workflow_id": workflow_id,
        "job_id": SubmitRecord::read(&s).ok().map(|r| r.job_id.to_string()),
        "kept": collect.kept,
        "tables": tables,
        "images": images,
        "orders": orders,
        "import_stages": import_state,
    })))
}

/// Query of the file call.
#[derive(Debug, Deserialize)]
pub(crate) struct FileQuery {
    path: String,
}

/// `rel` under `root`, when no part of it is a link and it is a plain file.
fn confined(root: &FsPath, rel: &str) -> Option<PathBuf> {
    let rel = FsPath::new(rel);
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    let mut at = root.to_path_buf();
    for c in rel.components() {
        at.push(c);
        let meta = std::fs::symlink_metadata(&at).ok()?;
        if meta.file_type().is_symlink() {
            return None;
        }
    }
    std::fs::symlink_metadata(&at)
        .ok()
        .filter(std::fs::Metadata::is_file)
        .map(|_| at)
}

pub(crate) async fn file(
    State(rt): State<Runtime>,
    Path(id): Path<String>,
    Query(q): Query<FileQuery>,
) -> Result<Response, ApiError> {
    let (_, collect, m) = kept(&rt, &id).await?;
    let listed = m.files.iter().any(|f| f.path == q.path);
    let path = listed
        .then(|| confined(&collect.kept, &q.path))
        .flatten()
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "`{}` is not a file of submission `{id}`'s kept results (see its results' `tables` and `images`)",
                    q.path
                ),
            )
        })?;
    let gone = |e: std::io::Error| {
        ApiError::new(
            StatusCode::GONE,
            "results_gone",
            format!("{} cannot be read: {e}", path.display()),
        )
    };
    let f = tokio::fs::File::open(&path).await.map_err(gone)?;
    let len = f.metadata().await.map_err(gone)?.len();
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(f));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        body,
    )
        .into_response())
}

/// The most lines one report of the attended script may hold, and the longest line.
const MAX_MADE_LINES: usize = 500;
const MAX_MADE_LINE: usize = 2_000;

/// What the attended script reports having made of a submission's results.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Made {
    /// One line per thing made (`4) counts.csv: table … on Dataset 51`).
    made: Vec<String>,
    /// One line per thing that could not be made, saying why.
    #[serde(default)]
    problems: Vec<String>,
}

pub(crate) async fn made(
    State(rt): State<Runtime>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "malformed", m);
    let r: Made = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("the report of what was made is not valid: {e}")))?;
    let lines = r.made.iter().chain(&r.problems);
    if r.made.len() + r.problems.len() > MAX_MADE_LINES {
        return Err(bad(format!(
            "the report holds more than {MAX_MADE_LINES} lines"
        )));
    }
    if lines.clone().any(|l| l.chars().count() > MAX_MADE_LINE) {
        return Err(bad(format!(
            "a line of the report is longer than {MAX_MADE_LINE} characters"
        )));
    }
    let (s, _, _) = kept(&rt, &id).await?;
    let detail =
        json!({ "by": "the attended OMERO script", "made": r.made, "problems": r.problems });
    rt.store.note(&s.id, "attended", &detail).await?;
    tracing::info!(submission = %s.id, made = r.made.len(), problems = r.problems.len(), "the attended script reported");
    Ok(Json(json!({ "submission": s.id, "noted": detail })))
}
