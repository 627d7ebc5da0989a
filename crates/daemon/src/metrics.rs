//! Prometheus metrics of the daemon (`GET /metrics`).
//!
//! Counters and histograms are updated where things happen (steps, bytes);
//! gauges that mirror the queue (submissions by state, queue depth) and the
//! configuration (reloads) are refreshed from their sources at each scrape.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A step and how it ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    /// Step name.
    pub step: String,
    /// Outcome.
    pub outcome: String,
}

/// A step.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabel {
    /// Step name.
    pub step: String,
}

/// A failure and its kind.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// Step name.
    pub step: String,
    /// What kind of failure (`invalid`, `gave_up`, `data`, `cluster`, …).
    pub reason: String,
}

/// A submission state.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// State name.
    pub state: String,
}

/// A transfer direction.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    /// `staged`, `uploaded` or `downloaded`.
    pub direction: String,
}

/// Adds `bytes` moved in `direction` (`staged`, `uploaded`, `downloaded`).
pub fn count_bytes(metrics: &Metrics, direction: &str, bytes: u64) {
    metrics
        .bytes
        .get_or_create(&DirectionLabel {
            direction: direction.into(),
        })
        .inc_by(bytes);
}

/// All metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Submissions per state (refreshed at scrape).
    pub submissions: Family<StateLabel, Gauge>,
    /// Submissions claimable now (refreshed at scrape).
    pub queue_depth: Gauge,
    /// Step durations.
    pub step_seconds: Family<StepLabels, Histogram>,
    /// Retries per step.
    pub retries: Family<StepLabel, Counter>,
    /// Failures per step and kind.
    pub failures: Family<FailureLabels, Counter>,
    /// Bytes moved.
    pub bytes: Family<DirectionLabel, Counter>,
    /// Successful configuration reloads (refreshed at scrape).
    pub config_reloads: Gauge,
    /// Failed configuration reloads (refreshed at scrape).
    pub config_reload_errors: Gauge,
    /// Workers running.
    pub workers: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `biomero_stage_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("biomero_stage");
        let submissions = Family::<StateLabel, Gauge>::default();
        registry.register("submissions", "Submissions by state", submissions.clone());
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Submissions that could be claimed now",
            queue_depth.clone(),
        );
        let step_seconds = Family::<StepLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 3.0, 12))
        });
        registry.register(
            "step_duration_seconds",
            "Duration of pipeline steps",
            step_seconds.clone(),
        );
        let retries = Family::<StepLabel, Counter>::default();
        registry.register(
            "step_retries",
            "Transient step failures that were retried",
            retries.clone(),
        );
        let failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "failures",
            "Submissions that failed, by step and kind",
            failures.clone(),
        );
        let bytes = Family::<DirectionLabel, Counter>::default();
        registry.register(
            "bytes",
            "Bytes staged, uploaded and downloaded",
            bytes.clone(),
        );
        let config_reloads = Gauge::default();
        registry.register(
            "config_reloads",
            "Successful configuration reloads since start",
            config_reloads.clone(),
        );
        let config_reload_errors = Gauge::default();
        registry.register(
            "config_reload_errors",
            "Failed configuration reloads since start",
            config_reload_errors.clone(),
        );
        let workers = Gauge::default();
        registry.register("workers", "Pipeline workers running", workers.clone());
        Metrics {
            registry,
            submissions,
            queue_depth,
            step_seconds,
            retries,
            failures,
            bytes,
            config_reloads,
            config_reload_errors,
            workers,
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
