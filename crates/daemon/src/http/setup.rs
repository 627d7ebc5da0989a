//! `GET /api/v1/check-setup`: what `biomero-stage check-setup` prints, as JSON.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::ApiError;
use crate::runtime::Runtime;

/// The cluster's folders, workflow images and scripts, converters and pull log.
pub(crate) async fn check_setup(State(rt): State<Runtime>) -> Result<Json<Value>, ApiError> {
    let config = rt.config.current();
    let unavailable = |e: stage_cluster::ClusterError| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "cluster_unavailable",
            e.to_string(),
        )
    };
    let cluster = rt.cluster.get(&config).map_err(unavailable)?;
    let workflows = crate::cluster::workflows(&config).map_err(unavailable)?;
    let report = stage_cluster::setup::check(
        &cluster.remote,
        &cluster.layout,
        &workflows,
        &crate::cluster::converters(&config),
    )
    .await
    .map_err(unavailable)?;
    Ok(Json(
        json!({ "generation": config.generation, "setup": report }),
    ))
}
