//! The admin HTTP endpoint (axum), bound to 127.0.0.1 by default.
//!
//! `GET /healthz`, `/readyz`, `/metrics`; `GET/POST /api/v1/submissions`,
//! `GET /api/v1/submissions/{id}`, `POST /api/v1/submissions/{id}/cancel`,
//! `GET /api/v1/workflows`, `GET /api/v1/check-setup`. Calls that change something need
//! `Authorization: Bearer <admin token>`; without a configured token they are
//! refused. Request bodies are limited to 1 MiB. Every error is JSON of one
//! shape: `{"error": {"code": …, "message": …, "fields": [{field, message}]}}`.

mod health;
mod setup;
mod submissions;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::intake::FieldError;
use crate::runtime::Runtime;

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 1 << 20;

/// An API error with its status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    fields: Vec<FieldError>,
}

impl ApiError {
    /// An error without field details.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({"error": {"code": self.code, "message": self.message, "fields": self.fields}});
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<stage_store::StoreError> for ApiError {
    fn from(e: stage_store::StoreError) -> Self {
        match e {
            stage_store::StoreError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            stage_store::StoreError::AlreadyFinished { .. } => {
                ApiError::new(StatusCode::CONFLICT, "already_finished", e.to_string())
            }
            other => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_unavailable",
                other.to_string(),
            ),
        }
    }
}

impl From<crate::intake::IntakeError> for ApiError {
    fn from(e: crate::intake::IntakeError) -> Self {
        match e {
            crate::intake::IntakeError::Malformed(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, "malformed", m)
            }
            crate::intake::IntakeError::Invalid(fields) => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid_submission",
                message: "the submission was refused; see fields".into(),
                fields,
            },
        }
    }
}

/// Checks the bearer token of a mutating call.
pub(crate) fn authorize(rt: &Runtime, headers: &HeaderMap) -> Result<(), ApiError> {
    let config = rt.config.current();
    let expected = config.settings.settings.admin_token().ok().flatten();
    let Some(expected) = expected else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "no_admin_token",
            "no admin token is configured, so changes through the API are disabled; set admin_token_file",
        ));
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if subtle::ConstantTimeEq::ct_eq(given.as_bytes(), expected.as_bytes()).into() {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this call needs `Authorization: Bearer <admin token>`",
        ))
    }
}

/// The router.
pub fn router(rt: Runtime) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route(
            "/api/v1/submissions",
            get(submissions::list).post(submissions::create),
        )
        .route("/api/v1/submissions/{id}", get(submissions::get))
        .route("/api/v1/submissions/{id}/cancel", post(submissions::cancel))
        .route("/api/v1/workflows", get(submissions::workflows))
        .route("/api/v1/check-setup", get(setup::check_setup))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(rt)
}

/// Serves the admin endpoint on `listener` until `shutdown`.
pub async fn serve(
    rt: Runtime,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(addr = ?addr, "admin endpoint listening");
    axum::serve(listener, router(rt))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
