//! Fetching descriptors from a repository over real HTTP: BIOMERO's file
//! order, the on-disk cache with ETag revalidation, offline use of the cache,
//! timeouts and server errors. The "repository" is a local axum server that
//! serves `/<owner>/<repo>/raw/<tag>/<file>` like GitHub does.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use stage_config::descriptor::DescriptorFormat;
use stage_config::descriptor::store::{DescriptorStore, FetchPolicy, Origin};

const YAML: &str = "docker_image: {org: o, name: n}\nparameters:\n  - {name: k, type: integer, default: 3, cli_tag: --k}\n";

#[derive(Default)]
struct Counters {
    requests: AtomicUsize,
    not_modified: AtomicUsize,
}

async fn serve(
    State(c): State<Arc<Counters>>,
    Path((_owner, repo, _tag, file)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    c.requests.fetch_add(1, Ordering::SeqCst);
    match (repo.as_str(), file.as_str()) {
        ("slow", _) => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            StatusCode::OK.into_response()
        }
        ("broken", _) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        (_, "descriptor.yaml") => {
            if headers
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                == Some("\"v1\"")
            {
                c.not_modified.fetch_add(1, Ordering::SeqCst);
                return StatusCode::NOT_MODIFIED.into_response();
            }
            ([(header::ETAG, "\"v1\"")], YAML).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn start_server() -> (String, Arc<Counters>, tokio::task::JoinHandle<()>) {
    let counters = Arc::new(Counters::default());
    let app = Router::new()
        .route("/{owner}/{repo}/raw/{tag}/{file}", get(serve))
        .with_state(Arc::clone(&counters));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), counters, task)
}

#[tokio::test]
async fn descriptors_are_fetched_in_biomero_order_cached_and_revalidated_with_etags() {
    let (base, counters, server) = start_server().await;
    let cache = tempfile::tempdir().unwrap();
    let store = DescriptorStore::new(
        vec![],
        Some(cache.path().to_path_buf()),
        FetchPolicy::Online,
        Duration::from_secs(2),
    );
    let repo = format!("{base}/o/wf/tree/v1");

    // descriptor.json is missing (404), descriptor.yaml is found and cached
    let f = store.find(&repo).await.unwrap();
    assert!(
        matches!(f.origin, Origin::Network { ref url } if url.ends_with("/o/wf/raw/v1/descriptor.yaml")),
        "{:?}",
        f.origin
    );
    assert_eq!(f.descriptor.format, DescriptorFormat::Bilayers);
    assert_eq!(counters.requests.load(Ordering::SeqCst), 2);
    let host_dir = base.trim_start_matches("http://").to_owned();
    assert!(
        cache
            .path()
            .join(&host_dir)
            .join("o/wf/v1/descriptor.yaml")
            .exists()
    );

    // again: the cached copy is revalidated with If-None-Match and the server says 304
    let f = store.find(&repo).await.unwrap();
    assert!(
        matches!(
            f.origin,
            Origin::Cache {
                revalidated: true,
                ..
            }
        ),
        "{:?}",
        f.origin
    );
    assert_eq!(counters.not_modified.load(Ordering::SeqCst), 1);

    // offline: the cache answers without any request
    let before = counters.requests.load(Ordering::SeqCst);
    let f = store.offline().find(&repo).await.unwrap();
    assert!(matches!(
        f.origin,
        Origin::Cache {
            revalidated: false,
            ..
        }
    ));
    assert_eq!(counters.requests.load(Ordering::SeqCst), before);

    // the server goes away: the cache is used, and the note says why
    server.abort();
    let _ = server.await;
    let f = store.find(&repo).await.unwrap();
    assert!(matches!(f.origin, Origin::Cache { .. }));
    assert!(
        f.notes.iter().any(|n| n.contains("could not revalidate")),
        "{:?}",
        f.notes
    );
}

#[tokio::test]
async fn timeouts_server_errors_and_missing_files_are_clear_errors() {
    let (base, _c, _server) = start_server().await;
    let cache = tempfile::tempdir().unwrap();
    let store = DescriptorStore::new(
        vec![],
        Some(cache.path().to_path_buf()),
        FetchPolicy::Online,
        Duration::from_millis(500),
    );
    let e = store
        .find(&format!("{base}/o/slow/tree/v1"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("timed out"), "{e}");
    let e = store
        .find(&format!("{base}/o/broken/tree/v1"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("500"), "{e}");
    let e = store
        .find(&format!("{base}/o/wf/tree/v1/config.yaml"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("config.yaml") && e.contains("not found"), "{e}");
    // nothing half-written is left in the cache
    let leftovers: Vec<_> = walk(cache.path());
    assert!(
        leftovers.iter().all(|p| !p.contains(".tmp")),
        "{leftovers:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}
