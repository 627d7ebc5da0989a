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

/// Serves the real descriptors pinned in `config/descriptors/github.com/` as GitHub's raw
/// URLs do, with an ETag per file (its content's length and hash) and 304 on a match.
async fn serve_real(
    State(c): State<Arc<Counters>>,
    Path((owner, repo, tag, file)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    c.requests.fetch_add(1, Ordering::SeqCst);
    let path = stage_tests::repo_root()
        .join("config/descriptors/github.com")
        .join(&owner)
        .join(&repo)
        .join(&tag)
        .join(&file);
    let Ok(bytes) = std::fs::read(&path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let etag = format!(
        "\"{}-{:x}\"",
        bytes.len(),
        bytes
            .iter()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(*b)))
    );
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        c.not_modified.fetch_add(1, Ordering::SeqCst);
        return StatusCode::NOT_MODIFIED.into_response();
    }
    ([(header::ETAG, etag)], bytes).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn descriptors_pin_fetches_every_workflows_descriptor_for_offline_use() {
    let counters = Arc::new(Counters::default());
    let app = Router::new()
        .route("/{owner}/{repo}/raw/{tag}/{file}", get(serve_real))
        .with_state(Arc::clone(&counters));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    let base = format!("http://{addr}");
    let dir = tempfile::tempdir().unwrap();
    let pinned = dir.path().join("pinned");
    let ini = dir.path().join("slurm-config.ini");
    let settings = dir.path().join("biomero-stage.toml");
    let write_ini = |extra: &str| {
        std::fs::write(
            &ini,
            format!(
                "[SSH]\nhost = slurm\n[SLURM]\nslurm_data_path = d\nslurm_images_path = i\nslurm_converters_path = c\nslurm_script_path = s\n[WORKFLOWS]\ncellpose = cellpose\ncellpose_repo = {base}/TorecLuik/W_NucleiSegmentation-Cellpose/tree/v1.2.7\nstardist = stardist\nstardist_repo = {base}/Neubias-WG5/W_NucleiSegmentation-Stardist/tree/v1.3.2\n{extra}"
            ),
        )
        .unwrap();
    };
    write_ini("");
    std::fs::write(
        &settings,
        format!(
            "state_dir = \"{}\"\ndescriptor_dirs = [\"{}\"]\ndescriptor_fetch = false\n",
            dir.path().join("state").display(),
            pinned.display()
        ),
    )
    .unwrap();
    let run = |args: &'static [&'static str]| {
        let (home, settings, ini) = (dir.path().to_path_buf(), settings.clone(), ini.clone());
        tokio::task::spawn_blocking(move || {
            let o = stage_tests::command(&home)
                .arg("--config")
                .arg(&settings)
                .args(args)
                .env("BIOMERO_SLURM_CONFIG_FILE", &ini)
                .output()
                .unwrap();
            stage_tests::text(&o)
        })
    };
    let (code, out, err) = run(&["descriptors", "pin", "--json"]).await.unwrap();
    assert_eq!(code, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let host = addr.to_string();
    for (wf, rel) in [
        (
            "cellpose",
            "TorecLuik/W_NucleiSegmentation-Cellpose/v1.2.7/descriptor.json",
        ),
        (
            "stardist",
            "Neubias-WG5/W_NucleiSegmentation-Stardist/v1.3.2/descriptor.json",
        ),
    ] {
        let file = pinned.join(&host).join(rel);
        let meta: serde_json::Value = serde_json::from_slice(
            &std::fs::read(format!("{}.meta.json", file.display())).unwrap(),
        )
        .unwrap();
        assert!(meta["etag"].as_str().unwrap().starts_with('"'), "{meta}");
        assert!(
            meta["url"]
                .as_str()
                .unwrap()
                .ends_with(rel.replacen("/v", "/raw/v", 1).as_str()),
            "{meta}"
        );
        let entry = report["workflows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["key"] == wf)
            .unwrap();
        assert_eq!(entry["pinned"], "fetched", "{entry}");
        assert_eq!(entry["file"], file.display().to_string());
    }
    // again: revalidated with the ETag, nothing rewritten
    let (code, out, _) = run(&["descriptors", "pin", "--json"]).await.unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(counters.not_modified.load(Ordering::SeqCst) >= 2);
    assert!(out.contains("\"unchanged\""), "{out}");
    // offline afterwards: config check finds both with their parameters, no request made
    let before = counters.requests.load(Ordering::SeqCst);
    let (code, out, err) = run(&["--offline", "config", "check", "--json"])
        .await
        .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for w in v["workflows"].as_array().unwrap() {
        assert!(w["descriptor"].is_object(), "{w}");
        assert_eq!(w["descriptor_origin"]["kind"], "shipped", "{w}");
    }
    assert_eq!(counters.requests.load(Ordering::SeqCst), before);
    // a workflow whose descriptor cannot be had is named, and pin says it failed
    write_ini("ghost = ghost\nghost_repo = http://127.0.0.1:9/nobody/nothing/tree/v0\n");
    let (code, out, err) = run(&["descriptors", "pin"]).await.unwrap();
    assert_eq!(code, 1, "{out}{err}");
    assert!(format!("{out}{err}").contains("ghost"), "{out}{err}");
}

#[test]
fn config_check_says_loudly_which_workflows_have_no_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("slurm-config.ini");
    std::fs::write(
        &ini,
        "[SSH]\nhost = slurm\n[SLURM]\nslurm_data_path = d\nslurm_images_path = i\nslurm_converters_path = c\nslurm_script_path = s\n[WORKFLOWS]\nghost = ghost\nghost_repo = https://github.com/nobody/nothing/tree/v0\n",
    )
    .unwrap();
    let settings = stage_tests::write_settings(dir.path(), true);
    let o = stage_tests::command(dir.path())
        .args([
            "--offline",
            "--config",
            settings.to_str().unwrap(),
            "config",
            "check",
        ])
        .env("BIOMERO_SLURM_CONFIG_FILE", &ini)
        .output()
        .unwrap();
    let (code, out, err) = stage_tests::text(&o);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("NO DESCRIPTOR, PARAMETERS NOT CHECKED: ghost (1 of 1 workflows)")
            && out.contains("descriptors pin"),
        "{out}"
    );
}
