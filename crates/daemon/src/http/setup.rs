//! `GET /api/v1/check-setup`: what `biomero-stage check-setup` prints, as JSON.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::ApiError;
use crate::runtime::Runtime;

/// The cluster could not be asked: 502, with the reason.
#[allow(clippy::needless_pass_by_value)] // used as `map_err(cluster_unavailable)`
fn cluster_unavailable(e: stage_cluster::ClusterError) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "cluster_unavailable",
        e.to_string(),
    )
}

/// The cluster's folders, workflow images and scripts, converters and pull log.
pub(crate) async fn check_setup(State(rt): State<Runtime>) -> Result<Json<Value>, ApiError> {
    let config = rt.config.current();
    let unavailable = cluster_unavailable;
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

/// `POST /api/v1/init` options.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InitOptions {
    /// Also start a container pull for every workflow whose image version is missing.
    #[serde(default)]
    pull: bool,
}

/// BIOMERO's "Slurm Init": the cluster folders, generated job scripts and (with `pull`)
/// container pulls; what `biomero-stage init [--pull]` does.
pub(crate) async fn init(
    State(rt): State<Runtime>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let options: InitOptions = if body.is_empty() {
        InitOptions::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed",
                format!("init options: {e}"),
            )
        })?
    };
    let config = rt.config.current();
    let unavailable = cluster_unavailable;
    let cluster = rt.cluster.get(&config).map_err(unavailable)?;
    let workflows = crate::cluster::workflows(&config).map_err(unavailable)?;
    let slurm = &config.slurm.slurm;
    let pull = options.pull.then(|| stage_cluster::setup::PullOptions {
        via_sbatch: slurm.image_pull_via_sbatch.value,
        sbatch_args: slurm
            .image_pull_params
            .iter()
            .map(stage_config::sbatch::SbatchParam::to_arg)
            .collect(),
    });
    let report =
        stage_cluster::setup::init(&cluster.remote, &cluster.layout, &workflows, pull.as_ref())
            .await
            .map_err(unavailable)?;
    Ok(Json(
        json!({ "generation": config.generation, "init": report }),
    ))
}
