//! `/api/v1/submissions` and `/api/v1/workflows`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};
use stage_store::ListFilter;

use super::ApiError;
use crate::intake;
use crate::runtime::Runtime;

/// Query of the list call.
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    state: Option<String>,
    limit: Option<i64>,
    /// The id of the last submission of the previous page (`next` of its answer).
    before: Option<String>,
}

pub(crate) async fn list(
    State(rt): State<Runtime>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let state = match q.state.as_deref() {
        Some(s) => Some(
            s.parse()
                .map_err(|e: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", e))?,
        ),
        None => None,
    };
    if let Some(b) = &q.before
        && rt.store.get(b).await?.is_none()
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            format!(
                "`before`: there is no submission `{b}` to page after; use the `next` of the previous page"
            ),
        ));
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let list = rt
        .store
        .list(&ListFilter {
            state,
            limit,
            run: None,
            before: q.before.clone(),
        })
        .await?;
    // a full page may have a next one: its cursor is this page's last id
    let next = (list.len() == usize::try_from(limit).unwrap_or(usize::MAX))
        .then(|| list.last().map(|s| s.id.clone()))
        .flatten();
    Ok(Json(json!({ "submissions": list, "next": next })))
}

pub(crate) async fn create(
    State(rt): State<Runtime>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let config = rt.config.current();
    let doc = intake::parse(&body, &intake::Limits::of(&config))?;
    let mut accepted = intake::validate(doc, &config)?;
    crate::versions::confirm(rt.on_cluster(), &config, &mut accepted.doc).await?;
    let (s, created) = intake::enqueue(&rt.store, accepted).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({ "created": created, "submission": s }))))
}

pub(crate) async fn get(
    State(rt): State<Runtime>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = rt.store.get(&id).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no submission with id `{id}`"),
        )
    })?;
    let events = rt.store.events(&id).await?;
    // the BIOMERO WorkflowRun it is recorded as, when BIOMERO's event store is configured
    let biomero = match crate::biomero::mirror::configured(&rt.config.current().slurm) {
        Ok(_) => {
            json!({ "workflow_id": crate::biomero::tracking::workflow_run(&rt.store.identity().await?, &s) })
        }
        Err(off) => json!({ "off": off }),
    };
    // what an open run is doing now: its last event, when that is a step's progress
    let progress = events
        .last()
        .filter(|e| !s.done && e.outcome == stage_store::Outcome::Progress)
        .map(|e| json!({ "step": e.step, "at": e.at, "detail": e.detail }));
    Ok(Json(json!({
        "submission": s,
        "progress": progress,
        "events": events,
        "biomero": biomero
    })))
}

pub(crate) async fn cancel(
    State(rt): State<Runtime>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = rt.store.request_cancel(&id).await?;
    Ok(Json(json!({ "submission": s })))
}

pub(crate) async fn workflows(State(rt): State<Runtime>) -> Json<Value> {
    let config = rt.config.current();
    let order = configured_order(&config.slurm);
    // the container versions on the cluster, as BIOMERO's run script offers them
    let found = rt.on_cluster().versions(&config).await;
    let list: Vec<Value> = order
        .iter()
        .filter_map(|k| config.registry.get(k))
        .map(|w| {
            let mut v = crate::report::workflow_json(w);
            if let (Ok(found), Some(o)) = (&found, v.as_object_mut()) {
                let present = found.get(&w.key).map(Vec::as_slice).unwrap_or_default();
                o.insert(
                    "versions".into(),
                    json!(crate::versions::offered(w, present)),
                );
            }
            v
        })
        .collect();
    Json(json!({
        "generation": config.generation,
        "workflows": list,
        "versions_error": found.err().map(|e| e.to_string()),
    }))
}

/// The workflow keys in the order slurm-config.ini declares them (file by file as read,
/// then line by line), the order BIOMERO's scripts list them in (configparser keeps it).
pub(crate) fn configured_order(slurm: &stage_config::SlurmConfig) -> Vec<String> {
    let mut keys: Vec<(usize, u32, &String)> = slurm
        .workflows
        .values()
        .map(|w| {
            let file =
                w.at.path()
                    .and_then(|p| slurm.files.iter().position(|f| f == p))
                    .unwrap_or(usize::MAX);
            (file, w.at.line().unwrap_or(u32::MAX), &w.key)
        })
        .collect();
    keys.sort();
    keys.into_iter().map(|(_, _, k)| k.clone()).collect()
}
