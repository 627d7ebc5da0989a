//! `biomero-stage serve`: the daemon.
//!
//! Loads the configuration (and keeps it live: file watcher and SIGHUP),
//! connects the queue, starts the workers, the lease reaper and the admin
//! endpoint, and tells systemd when it is ready (`Type=notify`), alive
//! (`WATCHDOG=1` while the database answers) and stopping. SIGTERM/SIGINT stop
//! claiming at once and give running steps a grace period.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use anyhow::Context as _;
use sd_notify::NotifyState;
use stage_config::{ConfigSources, LiveConfig};
use stage_store::Store;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::runtime::{Runtime, Timings};

/// Runs the daemon until SIGTERM/SIGINT.
pub async fn serve(sources: ConfigSources, timings: Timings) -> anyhow::Result<()> {
    let live = LiveConfig::load(sources)
        .await
        .context("the configuration cannot be used (run `biomero-stage config check`)")?;
    let snapshot = live.current();
    let settings = &snapshot.settings.settings;
    for w in snapshot.warnings() {
        tracing::warn!("{w}");
    }
    let url = settings.queue_url();
    let store = Store::connect(&url)
        .await
        .with_context(|| format!("cannot open the queue at {}", stage_store::redact(&url)))?;
    crate::queue_identity::check(&store, &settings.state_dir).await?;
    let resumed = store.resume_waiting().await?;
    if resumed > 0 {
        tracing::info!(
            resumed,
            "submissions that waited for a capability are runnable again"
        );
    }
    let listener = tokio::net::TcpListener::bind(&settings.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin_listen)", settings.admin_listen))?;
    let workers = usize::try_from(settings.workers).unwrap_or(1).max(1);
    let rt = Runtime {
        config: live.clone(),
        store: store.clone(),
        metrics: Arc::new(Metrics::new()),
        timings,
        workers_running: Arc::new(AtomicUsize::new(0)),
        workers_configured: workers,
        sources: Arc::new(crate::sources::SourceCache::default()),
        cluster: Arc::new(crate::cluster::ClusterCache::default()),
        versions: Arc::default(),
        importer: Arc::new(crate::importer::ImporterCache::default()),
        admin_addr: listener.local_addr().ok(),
        biomero_events: std::sync::Arc::default(),
        biomero_detached: std::sync::Arc::default(),
    };
    let shutdown = CancellationToken::new();
    let _watcher = live.spawn_watcher(Duration::from_secs(2))?;

    let mut tasks = tokio::task::JoinSet::new();
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
    for i in 0..workers {
        let name = format!("{host}-{}-w{i}", std::process::id());
        tasks.spawn(crate::worker::run(rt.clone(), name, shutdown.clone()));
    }
    let http = tokio::spawn(crate::http::serve(rt.clone(), listener, shutdown.clone()));
    let reaper = tokio::spawn(reap_loop(rt.clone(), shutdown.clone()));
    let resumer = tokio::spawn(resume_on_reload(rt.clone(), shutdown.clone()));
    let watchdog = tokio::spawn(watchdog_loop(rt.clone(), shutdown.clone()));
    let retention = tokio::spawn(crate::retention::run(rt.clone(), shutdown.clone()));
    let biomero_events = tokio::spawn(crate::biomero::mirror::run(
        rt.clone(),
        rt.biomero_events.clone(),
        shutdown.clone(),
    ));
    let biomero_detached = tokio::spawn(crate::biomero::detached::run(
        rt.clone(),
        rt.biomero_detached.clone(),
        shutdown.clone(),
    ));

    let _ = sd_notify::notify(&[
        NotifyState::Ready,
        NotifyState::Status("processing submissions"),
    ]);
    tracing::info!(workers, queue = %store.describe(), "biomero-stage is running");

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                let _ = sd_notify::notify(&[NotifyState::Reloading]);
                match live.reload().await {
                    Ok(g) => tracing::info!(generation = g, "reloaded on SIGHUP"),
                    Err(e) => tracing::error!(error = %e, "reload on SIGHUP failed; the previous configuration stays"),
                }
                let _ = sd_notify::notify(&[NotifyState::Ready]);
            }
        }
    }
    tracing::info!(
        "stopping: no new claims; running steps get {:?}",
        rt.timings.shutdown_grace
    );
    let _ = sd_notify::notify(&[NotifyState::Stopping]);
    shutdown.cancel();
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(rt.timings.shutdown_grace + Duration::from_secs(5), drain)
        .await
        .is_err()
    {
        tracing::warn!("workers did not stop in time");
    }
    let _ = http.await;
    reaper.abort();
    resumer.abort();
    watchdog.abort();
    retention.abort();
    let _ = tokio::time::timeout(Duration::from_secs(10), biomero_events).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), biomero_detached).await;
    tracing::info!("stopped");
    Ok(())
}

/// After every reload that brings a new generation, whatever triggered it (a file change,
/// SIGHUP, the API), makes what waited on the configuration runnable again: the next claim
/// re-checks it against the new generation, and it waits again if its cause remains.
async fn resume_on_reload(rt: Runtime, shutdown: CancellationToken) {
    let mut changes = rt.config.subscribe();
    let mut seen = changes.borrow().generation;
    loop {
        tokio::select! {
            r = changes.changed() => if r.is_err() { return },
            () = shutdown.cancelled() => return,
        }
        let generation = changes.borrow_and_update().generation;
        if generation == seen {
            continue; // a failed reload: the configuration in force did not change
        }
        seen = generation;
        match rt.store.resume_waiting().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                generation,
                resumed = n,
                "configuration reloaded: submissions that waited on it are runnable again"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "cannot resume waiting submissions after a reload");
            }
        }
    }
}

async fn reap_loop(rt: Runtime, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(rt.timings.reap_every) => {}
            () = shutdown.cancelled() => return,
        }
        match rt.store.reap().await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(expired = n, "leases expired and went back to the queue"),
            Err(e) => tracing::warn!(error = %e, "cannot reap leases"),
        }
    }
}

/// Pings systemd's watchdog while the queue database answers.
async fn watchdog_loop(rt: Runtime, shutdown: CancellationToken) {
    let Some(every) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = every / 2;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
        if rt.store.ping().await.is_ok() {
            let _ = sd_notify::notify(&[NotifyState::Watchdog]);
        } else {
            tracing::warn!("queue database does not answer; not feeding the watchdog");
        }
    }
}
