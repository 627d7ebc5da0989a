//! `/api/v1/biomero/runs`: BIOMERO run requests from the drop-in OMERO scripts.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use stage_config::settings::{Secret, StageSettings};

use super::ApiError;
use crate::biomero::accept::{self, OmeroWeb, RunError, RunRequest};
use crate::runtime::Runtime;

/// The header the scripts send the user's OMERO session key in (as omero-ms-pixel-buffer takes it).
pub const SESSION_HEADER: &str = "X-OMERO-Session-Key";

impl From<RunError> for ApiError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Malformed(m) => ApiError::new(StatusCode::BAD_REQUEST, "malformed", m),
            RunError::NoSession | RunError::Identity(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "identity_refused", e.to_string())
            }
            RunError::Unavailable(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "omero_unavailable", e.to_string())
            }
            RunError::NotConfigured => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_configured", e.to_string())
            }
            RunError::Refused(fields) => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid_run",
                message: "the run was refused, nothing was queued; see fields (each names a script input)".into(),
                fields,
            },
            RunError::Unchecked(fields) => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "unchecked_run",
                message: "the run could not be checked now, nothing was queued; see fields (each names a script input); try again".into(),
                fields,
            },
            RunError::Enqueue(e) => e.into(),
        }
    }
}

/// Where sessions are checked, from the settings.
pub fn omero_web(s: &StageSettings) -> Option<OmeroWeb> {
    s.omero_url.as_ref().map(|url| OmeroWeb {
        url: url.clone(),
        server_id: s.omero_server_id,
        timeout: Duration::from_secs(s.omero_timeout_secs),
    })
}

pub(crate) async fn create(
    State(rt): State<Runtime>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let req: RunRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("the run request is not valid: {e}"),
        )
    })?;
    let key = headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|k| Secret::new(k.trim()));
    let config = rt.config.current();
    let omero = omero_web(&config.settings.settings);
    let run = accept::accept(
        req,
        key,
        omero.as_ref(),
        rt.on_cluster(),
        &config,
        &rt.store,
    )
    .await?;
    let status = if run.submissions.iter().any(|(_, _, new)| *new) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({ "run": run }))))
}

async fn of_run(rt: &Runtime, run: &str) -> Result<Vec<stage_store::Submission>, ApiError> {
    let list = crate::biomero::run_submissions(&rt.store, run).await?;
    if list.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no run with id `{run}`"),
        ));
    }
    Ok(list)
}

pub(crate) async fn get(
    State(rt): State<Runtime>,
    Path(run): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let list = of_run(&rt, &run).await?;
    Ok(Json(json!({ "run": run, "submissions": list })))
}

/// What each submission of a run is doing, small enough to ask every few seconds (the
/// attended script's follow loop): state, what it waits for, its error, and its last progress
/// event while it is under way.
pub(crate) async fn progress(
    State(rt): State<Runtime>,
    Path(run): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let list = of_run(&rt, &run).await?;
    let mut out = Vec::with_capacity(list.len());
    for s in list {
        let progress = if s.done {
            None
        } else {
            rt.store
                .events(&s.id)
                .await?
                .pop()
                .filter(|e| e.outcome == stage_store::Outcome::Progress)
                .map(|e| json!({ "step": e.step, "at": e.at, "detail": e.detail }))
        };
        out.push(json!({
            "id": s.id, "workflow": s.workflow, "state": s.state, "done": s.done,
            "waiting_for": s.waiting_for, "error": s.error, "progress": progress,
        }));
    }
    Ok(Json(json!({ "run": run, "submissions": out })))
}

pub(crate) async fn cancel(
    State(rt): State<Runtime>,
    Path(run): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let list = of_run(&rt, &run).await?;
    let mut out = Vec::new();
    for s in list {
        match rt.store.request_cancel(&s.id).await {
            Ok(s) => out.push(json!({"id": s.id, "state": s.state, "cancel_requested": true})),
            Err(stage_store::StoreError::AlreadyFinished { .. }) => {
                out.push(json!({"id": s.id, "state": s.state, "cancel_requested": false}));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(json!({ "run": run, "submissions": out })))
}
