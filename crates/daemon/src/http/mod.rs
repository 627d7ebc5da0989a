//! The admin HTTP endpoint (axum), bound to 127.0.0.1 by default.
//!
//! `GET /healthz`, `/readyz`, `/metrics`; `GET/POST /api/v1/submissions` (the list pages with
//! `?before=<next>`),
//! `GET /api/v1/submissions/{id}`, `POST /api/v1/submissions/{id}/cancel`,
//! `GET /api/v1/submissions/{id}/results` and `…/results/file?path=` (the kept results),
//! `POST …/results/made` (what the attended script made of them),
//! `GET /api/v1/workflows`, `GET /api/v1/check-setup`, `POST /api/v1/init`; `POST /api/v1/biomero/runs`
//! (BIOMERO run requests, with the user's `X-OMERO-Session-Key`), `GET
//! /api/v1/biomero/runs/{run}[/progress]` and `POST /api/v1/biomero/runs/{run}/cancel`. Every `/api/v1` call needs
//! `Authorization: Bearer <admin token>` when a token is configured; without one,
//! changes are refused and reads are served only on a loopback address. Health,
//! readiness and metrics hold no user data and stay open. Request bodies are
//! limited to 1 MiB, headers must arrive within 10 s and a request ends within
//! 60 s. Every error is JSON of one shape:
//! `{"error": {"code": …, "message": …, "fields": [{field, message}]}}`.

mod health;
mod page;
mod results;
pub mod runs;
mod setup;
mod submissions;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;

use crate::intake::FieldError;
use crate::runtime::Runtime;

/// The largest request body ever read, whatever `max_submission_bytes` says: the most that
/// setting may be.
pub const BODY_CEILING: usize = 64 << 20;

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
            crate::intake::IntakeError::Malformed(ref m) => {
                ApiError::new(StatusCode::BAD_REQUEST, "malformed", m.clone())
            }
            crate::intake::IntakeError::Invalid(ref fields) => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid_submission",
                message: "the submission was refused; see fields".into(),
                fields: fields.clone(),
            },
            crate::intake::IntakeError::Conflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "id_conflict", e.to_string())
            }
        }
    }
}

impl From<crate::intake::EnqueueError> for ApiError {
    fn from(e: crate::intake::EnqueueError) -> Self {
        match e {
            crate::intake::EnqueueError::Refused(e) => e.into(),
            crate::intake::EnqueueError::Store(e) => e.into(),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is matched
/// without regard to case (RFC 7235 §2.1).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Whether the request carries `expected` as its bearer token (compared in constant time).
fn holds(headers: &HeaderMap, expected: &str) -> Result<(), ApiError> {
    let given = bearer(headers).unwrap_or("");
    if !expected.is_empty()
        && bool::from(subtle::ConstantTimeEq::ct_eq(
            given.as_bytes(),
            expected.as_bytes(),
        ))
    {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this call needs `Authorization: Bearer <admin token>` (a read: the admin or the viewer token)",
        ))
    }
}

/// The admin token in force, or the refusal when it cannot be read.
fn admin_token(rt: &Runtime) -> Result<Option<String>, ApiError> {
    rt.config.current().settings.settings.admin_token().map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "admin_token_unreadable",
            format!("the admin token cannot be read ({e}), so the API refuses every call that needs it"),
        )
    })
}

/// Checks the bearer token of a call that changes something: always needed.
pub(crate) fn authorize(rt: &Runtime, headers: &HeaderMap) -> Result<(), ApiError> {
    match admin_token(rt)? {
        Some(expected) => holds(headers, &expected),
        None => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "no_admin_token",
            "no admin token is configured, so changes through the API are disabled; set admin_token_file",
        )),
    }
}

/// The read-only viewer token in force, or the refusal when it cannot be read.
fn viewer_token(rt: &Runtime) -> Result<Option<String>, ApiError> {
    rt.config
        .current()
        .settings
        .settings
        .viewer_token()
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "viewer_token_unreadable",
                format!("the viewer token cannot be read ({e})"),
            )
        })
}

/// Checks a read of the API (submissions hold user names and paths): the admin or the viewer
/// token when one is configured; without either, reads are served only on a loopback address.
pub(crate) fn authorize_read(rt: &Runtime, headers: &HeaderMap) -> Result<(), ApiError> {
    let viewer = viewer_token(rt)?;
    if let Some(v) = &viewer
        && holds(headers, v).is_ok()
    {
        return Ok(());
    }
    match (admin_token(rt)?, viewer) {
        (Some(expected), _) => holds(headers, &expected),
        (None, Some(v)) => holds(headers, &v),
        (None, None) if rt.admin_addr.is_none_or(|a| a.ip().is_loopback()) => Ok(()),
        (None, None) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "no_admin_token",
            "the admin endpoint listens beyond this host and no admin or viewer token is configured, so the API is closed; set admin_token_file (or viewer_token_file for reads)",
        )),
    }
}

/// Lets an API call through when its token allows it: reads by [`authorize_read`], every
/// other method by [`authorize`].
async fn guard(State(rt): State<Runtime>, req: Request, next: Next) -> Response {
    let allowed = if matches!(*req.method(), Method::GET | Method::HEAD) {
        authorize_read(&rt, req.headers())
    } else {
        authorize(&rt, req.headers())
    };
    if let Err(e) = allowed {
        return e.into_response();
    }
    // a body is held to the submission limit in force (`max_submission_bytes`): a declared
    // length above it is refused before reading, a body that runs past it as it is read
    let limit = crate::intake::Limits::of(&rt.config.current()).document_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is larger than {limit} bytes (max_submission_bytes)"),
        )
        .into_response();
    }
    let req = req.map(|body| axum::body::Body::new(http_body_util::Limited::new(body, limit)));
    next.run(req).await
}

/// How long a client may take to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take, body and answer included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_mins(1);
/// The most connections served at once; more are closed as they arrive.
pub const MAX_CONNECTIONS: usize = 256;

/// The router.
pub fn router(rt: Runtime) -> Router {
    let api = Router::new()
        .route(
            "/api/v1/submissions",
            get(submissions::list).post(submissions::create),
        )
        .route("/api/v1/submissions/{id}", get(submissions::get))
        .route("/api/v1/submissions/{id}/cancel", post(submissions::cancel))
        .route("/api/v1/submissions/{id}/results", get(results::describe))
        .route("/api/v1/submissions/{id}/results/file", get(results::file))
        .route("/api/v1/submissions/{id}/results/made", post(results::made))
        .route("/api/v1/workflows", get(submissions::workflows))
        .route("/api/v1/biomero/runs", post(runs::create))
        .route("/api/v1/biomero/runs/{run}", get(runs::get))
        .route("/api/v1/biomero/runs/{run}/progress", get(runs::progress))
        .route("/api/v1/biomero/runs/{run}/cancel", post(runs::cancel))
        .route("/api/v1/check-setup", get(setup::check_setup))
        .route("/api/v1/init", post(setup::init))
        .route_layer(middleware::from_fn_with_state(rt.clone(), guard));
    Router::new()
        .route("/", get(page::overview))
        .route("/runs/{id}", get(page::run))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .merge(api)
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .layer(DefaultBodyLimit::max(BODY_CEILING))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(rt)
}

/// Serves the admin endpoint on `listener` until `shutdown`: HTTP/1.1, headers within
/// [`HEADER_READ_TIMEOUT`], at most [`MAX_CONNECTIONS`] at once; on shutdown, requests in
/// flight are finished (for up to [`REQUEST_TIMEOUT`]).
pub async fn serve(
    rt: Runtime,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "admin endpoint listening");
    }
    let app = router(rt);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // out of file descriptors and the like: pause instead of spinning
                    tracing::warn!(error = %e, "admin endpoint cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(%peer, limit = MAX_CONNECTIONS, "admin endpoint at its connection limit; closing a new connection");
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        let conn =
            graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "admin connection ended");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(REQUEST_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("admin requests still running at shutdown were dropped");
    }
    Ok(())
}
