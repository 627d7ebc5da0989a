//! Live configuration: immutable snapshots, swapped atomically on reload.
//!
//! The OMERO.biomero Admin tab rewrites `slurm-config.ini` while the daemon
//! runs, and its Zarr toggles must take effect at once. [`LiveConfig`] holds the
//! current [`Snapshot`] (settings, slurm config, registry) behind an
//! `ArcSwap`: readers take an `Arc` and keep a consistent view for as long as
//! they need it, a reload builds a whole new snapshot and swaps it in. A reload
//! that fails keeps the last good snapshot in force and records the error,
//! which stays visible (logs, the readiness endpoint) until a reload succeeds.
//!
//! [`LiveConfig::spawn_watcher`] reloads when a watched file changes: inotify
//! (via `notify`) on the files' directories for a fast reaction, and a slow poll
//! of the files' contents as a fallback for filesystems without inotify (NFS,
//! some container mounts). Both only reload when the content actually changed.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use notify::Watcher;
use serde::Serialize;
use tokio::sync::watch;

use crate::descriptor::store::{DescriptorStore, FetchPolicy};
use crate::env::Environment;
use crate::error::{ConfigErrors, Warning};
use crate::registry::{DescriptorRefresh, Registry};
use crate::search::SearchPlan;
use crate::settings::{LoadedSettings, SettingsError, StageSettings};
use crate::slurm::SlurmConfig;

/// Where a configuration is read from.
#[derive(Debug, Clone, Default)]
pub struct ConfigSources {
    /// biomero-stage.toml (else `$BIOMERO_STAGE_CONFIG`, else the default file if it exists).
    pub settings_file: Option<PathBuf>,
    /// An explicit slurm-config.ini (`--slurm-config`), over the settings' `slurm_config`.
    pub slurm_config: Option<PathBuf>,
    /// The environment (`BIOMERO_*`, `BIOMERO_STAGE_*`, `HOME`).
    pub env: Environment,
    /// Forces the descriptor fetch policy (`--offline`).
    pub fetch_override: Option<FetchPolicy>,
}

/// Why a configuration could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// biomero-stage.toml or a `BIOMERO_STAGE_*` variable.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// slurm-config.ini or a `BIOMERO_*` variable.
    #[error(transparent)]
    Slurm(#[from] ConfigErrors),
}

/// One consistent, immutable configuration.
#[derive(Debug, Serialize)]
pub struct Snapshot {
    /// Increases by one with every successful load.
    pub generation: u64,
    /// When it was loaded.
    pub loaded_at: SystemTime,
    /// biomero-stage's own settings.
    pub settings: LoadedSettings,
    /// slurm-config.ini.
    pub slurm: SlurmConfig,
    /// The workflow registry.
    pub registry: Registry,
    /// The slurm-config.ini search that was used.
    #[serde(skip)]
    pub plan: SearchPlan,
}

impl Snapshot {
    /// Every warning of this configuration.
    pub fn warnings(&self) -> Vec<&Warning> {
        self.settings
            .warnings
            .iter()
            .chain(self.slurm.warnings.iter())
            .chain(self.registry.all_warnings())
            .collect()
    }

    /// The files this snapshot was read from or would read if they appeared.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.settings.file.iter().cloned().collect();
        files.extend(self.plan.paths());
        files
    }
}

/// Builds a descriptor store from settings (and an optional policy override).
pub fn descriptor_store(settings: &StageSettings, fetch: Option<FetchPolicy>) -> DescriptorStore {
    let policy = fetch.unwrap_or(if settings.descriptor_fetch {
        FetchPolicy::Online
    } else {
        FetchPolicy::Offline
    });
    DescriptorStore::new(
        settings.descriptor_dirs.clone(),
        Some(settings.descriptor_cache()),
        policy,
        Duration::from_secs(settings.descriptor_timeout_secs),
    )
}

/// Loads one snapshot from `sources`; when it loads, its read limits become this process's.
pub async fn load_snapshot(
    sources: &ConfigSources,
    refresh: DescriptorRefresh,
    generation: u64,
) -> Result<Snapshot, LoadError> {
    let settings = StageSettings::load(sources.settings_file.as_deref(), &sources.env)?;
    let explicit = sources
        .slurm_config
        .clone()
        .or_else(|| settings.settings.slurm_config.clone());
    let plan = SearchPlan::biomero(&sources.env, explicit.as_deref());
    let slurm = SlurmConfig::load(&plan, &sources.env)?;
    let store = descriptor_store(&settings.settings, sources.fetch_override);
    let registry =
        Registry::build(&slurm, settings.settings.importer_enabled, &store, refresh).await;
    // the read limits are the process's: applied only once the whole configuration loaded,
    // so a reload refused for any reason leaves the limits in force with the rest of it
    stage_common::limits::set(settings.settings.read_limits());
    Ok(Snapshot {
        generation,
        loaded_at: SystemTime::now(),
        settings,
        slurm,
        registry,
        plan,
    })
}

/// The last reload that failed (cleared by a successful one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadFailure {
    /// When it failed.
    pub at: SystemTime,
    /// The errors, one per line.
    pub message: String,
}

/// What a subscriber sees after every reload attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ConfigVersion {
    /// The generation in force.
    pub generation: u64,
    /// How many reloads have failed so far.
    pub failures: u64,
}

/// Reload counters (for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReloadStats {
    /// Successful reloads (the initial load not counted).
    pub reloads: u64,
    /// Failed reloads.
    pub failures: u64,
}

struct LiveInner {
    sources: ConfigSources,
    current: ArcSwap<Snapshot>,
    last_error: Mutex<Option<ReloadFailure>>,
    fingerprint: Mutex<u64>,
    changed: watch::Sender<ConfigVersion>,
    reload_lock: tokio::sync::Mutex<()>,
    reloads: AtomicU64,
    failures: AtomicU64,
}

/// The configuration a running daemon uses; cheap to clone, shared by all tasks.
#[derive(Clone)]
pub struct LiveConfig {
    inner: Arc<LiveInner>,
}

impl std::fmt::Debug for LiveConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveConfig")
            .field("generation", &self.current().generation)
            .finish_non_exhaustive()
    }
}

impl LiveConfig {
    /// Loads the initial configuration (revalidating descriptors); it must succeed.
    pub async fn load(sources: ConfigSources) -> Result<Self, LoadError> {
        // Fingerprint before reading, so that a change during the load is seen later.
        let before = sources_files(&sources);
        let fp_before = fingerprint_of(&before);
        let snapshot = load_snapshot(&sources, DescriptorRefresh::Revalidate, 1).await?;
        let files = snapshot.watched_files();
        let fp = if files == before {
            fp_before
        } else {
            fingerprint_of(&files)
        };
        let (changed, _) = watch::channel(ConfigVersion {
            generation: 1,
            failures: 0,
        });
        Ok(LiveConfig {
            inner: Arc::new(LiveInner {
                sources,
                current: ArcSwap::from_pointee(snapshot),
                last_error: Mutex::new(None),
                fingerprint: Mutex::new(fp),
                changed,
                reload_lock: tokio::sync::Mutex::new(()),
                reloads: AtomicU64::new(0),
                failures: AtomicU64::new(0),
            }),
        })
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<Snapshot> {
        self.inner.current.load_full()
    }

    /// The last failed reload, if no reload succeeded since.
    pub fn last_error(&self) -> Option<ReloadFailure> {
        self.inner.last_error.lock().map_or(None, |g| g.clone())
    }

    /// Reload counters.
    pub fn stats(&self) -> ReloadStats {
        ReloadStats {
            reloads: self.inner.reloads.load(Ordering::Relaxed),
            failures: self.inner.failures.load(Ordering::Relaxed),
        }
    }

    /// A receiver that sees every reload attempt (new generation, or one more failure).
    pub fn subscribe(&self) -> watch::Receiver<ConfigVersion> {
        self.inner.changed.subscribe()
    }

    /// Reloads now (SIGHUP). On failure the current snapshot stays and the error is recorded.
    pub async fn reload(&self) -> Result<u64, LoadError> {
        let _guard = self.inner.reload_lock.lock().await;
        let files = self.current().watched_files();
        let fp = fingerprint_of(&files);
        if let Ok(mut f) = self.inner.fingerprint.lock() {
            *f = fp;
        }
        let next = self.current().generation + 1;
        match load_snapshot(&self.inner.sources, DescriptorRefresh::CacheFirst, next).await {
            Ok(snapshot) => {
                let generation = snapshot.generation;
                self.inner.current.store(Arc::new(snapshot));
                if let Ok(mut e) = self.inner.last_error.lock() {
                    *e = None;
                }
                self.inner.reloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!(generation, "configuration reloaded");
                self.inner.changed.send_replace(ConfigVersion {
                    generation,
                    failures: self.inner.failures.load(Ordering::Relaxed),
                });
                Ok(generation)
            }
            Err(err) => {
                let failures = self.inner.failures.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::error!(
                    error = %err,
                    generation = next - 1,
                    "configuration reload failed; the last good configuration stays in force"
                );
                if let Ok(mut e) = self.inner.last_error.lock() {
                    *e = Some(ReloadFailure {
                        at: SystemTime::now(),
                        message: err.to_string(),
                    });
                }
                self.inner.changed.send_replace(ConfigVersion {
                    generation: next - 1,
                    failures,
                });
                Err(err)
            }
        }
    }

    /// Reloads if the content of a watched file changed since the last attempt.
    pub async fn reload_if_changed(&self) -> Option<Result<u64, LoadError>> {
        let fp = fingerprint_of(&self.current().watched_files());
        let last = self.inner.fingerprint.lock().map_or(0, |g| *g);
        if fp == last {
            return None;
        }
        Some(self.reload().await)
    }

    /// Watches the configuration files and reloads on change until the handle is dropped.
    pub fn spawn_watcher(&self, poll_every: Duration) -> Result<WatchHandle, notify::Error> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                if res.is_ok() {
                    let _ = tx.send(());
                }
            })?;
        let mut watched_dirs: Vec<PathBuf> = Vec::new();
        watch_dirs(
            &mut watcher,
            &mut watched_dirs,
            &self.current().watched_files(),
        );
        let live = self.clone();
        let task = tokio::spawn(async move {
            let mut poll = tokio::time::interval(poll_every);
            poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    ev = rx.recv() => {
                        if ev.is_none() { break; }
                        // let an editor finish writing (several events per save)
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        while rx.try_recv().is_ok() {}
                    }
                    _ = poll.tick() => {}
                }
                if live.reload_if_changed().await.is_some() {
                    watch_dirs(
                        &mut watcher,
                        &mut watched_dirs,
                        &live.current().watched_files(),
                    );
                }
            }
        });
        Ok(WatchHandle { task })
    }
}

/// Stops the watcher when dropped.
#[derive(Debug)]
pub struct WatchHandle {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn watch_dirs(watcher: &mut impl Watcher, watched: &mut Vec<PathBuf>, files: &[PathBuf]) {
    for f in files {
        let Some(dir) = f.parent().filter(|d| d.is_dir()) else {
            continue;
        };
        if watched.iter().any(|d| d == dir) {
            continue;
        }
        match watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
            Ok(()) => watched.push(dir.to_path_buf()),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch directory; relying on polling");
            }
        }
    }
}

fn sources_files(sources: &ConfigSources) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = sources.settings_file.iter().cloned().collect();
    files.extend(SearchPlan::biomero(&sources.env, sources.slurm_config.as_deref()).paths());
    files
}

/// A hash of the files' contents (missing files count too).
fn fingerprint_of(files: &[PathBuf]) -> u64 {
    let mut h = DefaultHasher::new();
    for f in files {
        f.hash(&mut h);
        match std::fs::read(Path::new(f)) {
            Ok(bytes) => bytes.hash(&mut h),
            Err(e) => e.kind().hash(&mut h),
        }
    }
    h.finish()
}
