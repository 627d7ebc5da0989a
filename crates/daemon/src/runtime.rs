//! What every part of the running daemon shares: configuration, queue, metrics.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use stage_config::LiveConfig;
use stage_store::Store;

use crate::cluster::ClusterCache;
use crate::importer::ImporterCache;
use crate::metrics::Metrics;
use crate::sources::SourceCache;

/// Timings of the queue machinery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// How long a claim holds without renewal.
    pub lease: Duration,
    /// How often a worker polls when no notification arrives.
    pub poll: Duration,
    /// How often expired leases are reaped.
    pub reap_every: Duration,
    /// First retry delay (doubles per attempt).
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Attempts of one step before the submission fails.
    pub max_attempts: i32,
    /// How long shutdown waits for running steps.
    pub shutdown_grace: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            lease: Duration::from_secs(30),
            poll: Duration::from_secs(2),
            reap_every: Duration::from_secs(5),
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_mins(5),
            max_attempts: 12,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// The daemon's shared state (cheap to clone).
#[derive(Clone)]
pub struct Runtime {
    /// Live configuration.
    pub config: LiveConfig,
    /// The queue.
    pub store: Store,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Queue timings.
    pub timings: Timings,
    /// Workers currently running.
    pub workers_running: Arc<AtomicUsize>,
    /// Workers configured.
    pub workers_configured: usize,
    /// Input sources (group folders, the OMERO session), kept between steps.
    pub sources: Arc<SourceCache>,
    /// The cluster connection and job watcher, kept between steps.
    pub cluster: Arc<ClusterCache>,
    /// The container versions last found on the cluster.
    pub versions: Arc<crate::versions::VersionCache>,
    /// The connection pool to BIOMERO.importer's database, kept between steps.
    pub importer: Arc<ImporterCache>,
    /// The address the admin endpoint listens on (`None` when it does not).
    pub admin_addr: Option<std::net::SocketAddr>,
    /// What the writer into BIOMERO's event store is doing.
    pub biomero_events: crate::biomero::mirror::SharedStatus,
    /// What the follower of BIOMERO 2.9's detached runs is doing.
    pub biomero_detached: crate::biomero::detached::SharedStatus,
}

impl Runtime {
    /// The cluster to ask which container versions it has, through the shared listing.
    pub fn on_cluster(&self) -> crate::versions::OnCluster<'_> {
        crate::versions::OnCluster {
            clusters: &self.cluster,
            cache: &self.versions,
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}
