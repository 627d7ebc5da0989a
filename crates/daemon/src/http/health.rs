//! `/healthz`, `/readyz` and `/metrics`.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use crate::metrics::{Metrics, StateLabel};
use crate::runtime::Runtime;

/// The process is alive.
pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready: the database answers, the configuration is valid (the last reload error shown), workers run.
pub(crate) async fn readyz(State(rt): State<Runtime>) -> impl IntoResponse {
    let db = rt.store.ping().await;
    let config = rt.config.current();
    let reload_error = rt.config.last_error();
    let workers = rt.workers_running.load(Ordering::Relaxed);
    let ready = db.is_ok() && workers == rt.workers_configured && workers > 0;
    let body = json!({
        "ready": ready,
        "database": match &db { Ok(()) => json!({"ok": true}), Err(e) => json!({"ok": false, "error": e.to_string()}) },
        "configuration": {
            "generation": config.generation,
            "ok": reload_error.is_none(),
            "last_reload_error": reload_error.map(|e| e.message),
            "warnings": config.warnings().len(),
        },
        "workers": {"running": workers, "configured": rt.workers_configured},
        "biomero_events": biomero_events(&rt).await,
        "biomero_detached": rt.biomero_detached.lock().map(|s| json!(*s)).unwrap_or_default(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body))
}

/// The writer into BIOMERO's event store: where, whether it is behind and why. Its lag
/// does not make the daemon unready: the pipeline goes on and the events wait.
async fn biomero_events(rt: &Runtime) -> serde_json::Value {
    let status = rt
        .biomero_events
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    let mut v = json!(status);
    if status.store.is_some()
        && let Ok(lag) = rt.store.mirror_lag().await
    {
        v["waiting"] = json!({
            "events": lag.events,
            "submissions": lag.submissions,
            "oldest": lag.oldest,
            "seconds": lag.oldest.map(|t| (chrono::Utc::now() - t).num_seconds()),
        });
    }
    v
}

/// Prometheus text format.
pub(crate) async fn metrics(State(rt): State<Runtime>) -> impl IntoResponse {
    if let Ok(counts) = rt.store.counts_by_state().await {
        for st in stage_store::model::ALL_STATES {
            let n = counts.iter().find(|(s, _)| *s == st).map_or(0, |(_, n)| *n);
            rt.metrics
                .submissions
                .get_or_create(&StateLabel {
                    state: st.to_string(),
                })
                .set(n);
        }
    }
    if let Ok(d) = rt.store.queue_depth().await {
        rt.metrics.queue_depth.set(d);
    }
    let stats = rt.config.stats();
    Metrics::catch_up(&rt.metrics.config_reloads, stats.reloads);
    Metrics::catch_up(&rt.metrics.config_reload_errors, stats.failures);
    let tracking = rt
        .biomero_events
        .lock()
        .map(|s| (s.store.is_some(), s.written))
        .unwrap_or_default();
    Metrics::catch_up(&rt.metrics.biomero_events_written, tracking.1);
    if tracking.0
        && let Ok(lag) = rt.store.mirror_lag().await
    {
        rt.metrics.biomero_events_waiting.set(lag.events);
    }
    rt.metrics.process.refresh();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        rt.metrics.encode(),
    )
}
