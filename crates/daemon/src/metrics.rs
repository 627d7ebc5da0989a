//! Prometheus metrics of the daemon (`GET /metrics`, OpenMetrics text).
//!
//! Named by Prometheus' conventions: `biomero_stage_` then what is measured,
//! in base units (`_seconds`, `_bytes`), counters ending in `_total`. Counters
//! and histograms are updated where things happen (steps, bytes, jobs,
//! imports, events written to BIOMERO's store); gauges that mirror the queue
//! and the counts kept elsewhere (configuration reloads) are refreshed at each
//! scrape, as are the standard `process_*` metrics ([`crate::process_metrics`]).
//! Every metric is documented in `docs/metrics.md` (a test keeps the two equal).

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

/// A workflow.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkflowLabel {
    /// Workflow key.
    pub workflow: String,
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
    /// Successful configuration reloads (brought up to the live count at scrape).
    pub config_reloads: Counter,
    /// Failed configuration reloads (likewise).
    pub config_reload_errors: Counter,
    /// Workers running.
    pub workers: Gauge,
    /// Time jobs waited in Slurm's queue (submit to start).
    pub slurm_queue_wait: Family<WorkflowLabel, Histogram>,
    /// Time jobs ran (start to end).
    pub slurm_run: Family<WorkflowLabel, Histogram>,
    /// Time from placing the importer orders to their completion.
    pub import_latency: Family<WorkflowLabel, Histogram>,
    /// Events written to BIOMERO's event store.
    pub biomero_events_written: Counter,
    /// Events waiting to be written there (refreshed at scrape).
    pub biomero_events_waiting: Gauge,
    /// The standard process metrics (refreshed at scrape).
    pub process: crate::process_metrics::ProcessMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `biomero_stage_` prefix.
    pub fn new() -> Self {
        let mut root = Registry::default();
        let process = crate::process_metrics::ProcessMetrics::register(&mut root);
        let registry = root.sub_registry_with_prefix("biomero_stage");
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
            "Duration of pipeline steps, by step and outcome",
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
            "transferred_bytes",
            "Bytes staged, uploaded and downloaded",
            bytes.clone(),
        );
        let config_reloads = Counter::default();
        registry.register(
            "config_reloads",
            "Configurations that took effect: the load at start, then every reload",
            config_reloads.clone(),
        );
        let config_reload_errors = Counter::default();
        registry.register(
            "config_reload_failures",
            "Failed configuration reloads since start (the last good configuration stayed)",
            config_reload_errors.clone(),
        );
        let workers = Gauge::default();
        registry.register("workers", "Pipeline workers running", workers.clone());
        // a minute to a week: 1 s, 4 s, 16 s, … 3 days
        let long = || Histogram::new(exponential_buckets(1.0, 4.0, 10));
        let slurm_queue_wait = Family::<WorkflowLabel, Histogram>::new_with_constructor(long);
        registry.register(
            "slurm_queue_wait_seconds",
            "Time jobs waited in Slurm's queue, submit to start (sacct/scontrol)",
            slurm_queue_wait.clone(),
        );
        let slurm_run = Family::<WorkflowLabel, Histogram>::new_with_constructor(long);
        registry.register(
            "slurm_run_seconds",
            "Time jobs ran, start to end (sacct/scontrol)",
            slurm_run.clone(),
        );
        let import_latency = Family::<WorkflowLabel, Histogram>::new_with_constructor(long);
        registry.register(
            "import_latency_seconds",
            "Time from placing BIOMERO.importer orders to their completion",
            import_latency.clone(),
        );
        let biomero_events_written = Counter::default();
        registry.register(
            "biomero_events_written",
            "Events written to BIOMERO's event store",
            biomero_events_written.clone(),
        );
        let biomero_events_waiting = Gauge::default();
        registry.register(
            "biomero_events_waiting",
            "Events of our log not yet written to BIOMERO's event store",
            biomero_events_waiting.clone(),
        );
        Metrics {
            registry: root,
            submissions,
            queue_depth,
            step_seconds,
            retries,
            failures,
            bytes,
            config_reloads,
            config_reload_errors,
            workers,
            slurm_queue_wait,
            slurm_run,
            import_latency,
            biomero_events_written,
            biomero_events_waiting,
            process,
        }
    }

    /// Brings a counter kept here up to a count kept elsewhere (it never goes down).
    pub fn catch_up(counter: &Counter, total: u64) {
        let now = counter.get();
        if total > now {
            counter.inc_by(total - now);
        }
    }

    /// Observes `seconds` for `workflow` in `family`.
    pub fn observe(family: &Family<WorkflowLabel, Histogram>, workflow: &str, seconds: f64) {
        family
            .get_or_create(&WorkflowLabel {
                workflow: workflow.to_owned(),
            })
            .observe(seconds);
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
