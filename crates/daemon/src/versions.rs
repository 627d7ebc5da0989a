//! The container versions present on the cluster, per workflow: what BIOMERO's run script
//! offers as `<wf>_Version` and what a run may choose.
//!
//! BIOMERO lists `<slurm_images_path>/<folder>/<image>_<version>.sif` and runs whichever
//! version the user picked (`SINGULARITY_IMAGE = <image>_<version>.sif`); its parameters
//! come from the configured version's descriptor. biomero-stage does the same: the listing is
//! `check-setup`'s one remote command, kept for [`FRESH`] (a failed ask for [`FAILED_FRESH`])
//! and asked again when the configuration changes. A run that names the configured version
//! needs no listing; any other version must be on the cluster when the run is accepted.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stage_config::live::Snapshot;
use stage_config::registry::ResolvedWorkflow;

use crate::cluster::ClusterCache;

/// How long a listing is used before the cluster is asked again.
pub const FRESH: Duration = Duration::from_mins(1);
/// How long a failed ask is remembered (so a cluster that is down does not slow every
/// request of the script's parameter list).
pub const FAILED_FRESH: Duration = Duration::from_secs(15);
/// The longest the cluster is waited for.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(20);

/// The versions present on the cluster, by workflow key, as found (unordered).
pub type Versions = BTreeMap<String, Vec<String>>;

/// Why the versions on the cluster are not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the cluster could not be asked which versions it has: {0}")]
pub struct VersionsUnknown(pub String);

struct Entry {
    generation: u64,
    at: Instant,
    result: Result<Arc<Versions>, VersionsUnknown>,
}

/// The last listing, shared by the daemon's requests; one ask at a time.
#[derive(Default)]
pub struct VersionCache {
    last: tokio::sync::Mutex<Option<Entry>>,
}

impl std::fmt::Debug for VersionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionCache").finish_non_exhaustive()
    }
}

/// The cluster to ask and the listing to reuse.
#[derive(Debug, Clone, Copy)]
pub struct OnCluster<'a> {
    /// The daemon's (or the command's) cluster connections.
    pub clusters: &'a ClusterCache,
    /// The last listing.
    pub cache: &'a VersionCache,
}

impl OnCluster<'_> {
    /// The versions on the cluster of `config`, from the listing when it is fresh.
    pub async fn versions(&self, config: &Snapshot) -> Result<Arc<Versions>, VersionsUnknown> {
        let mut last = self.cache.last.lock().await;
        if let Some(e) = last.as_ref() {
            let fresh = if e.result.is_ok() {
                FRESH
            } else {
                FAILED_FRESH
            };
            if e.generation == config.generation && e.at.elapsed() < fresh {
                return e.result.clone();
            }
        }
        let result = match tokio::time::timeout(ASK_TIMEOUT, ask(self.clusters, config)).await {
            Ok(r) => r.map(Arc::new),
            Err(_) => Err(VersionsUnknown(format!(
                "no answer within {} s",
                ASK_TIMEOUT.as_secs()
            ))),
        };
        *last = Some(Entry {
            generation: config.generation,
            at: Instant::now(),
            result: result.clone(),
        });
        result
    }
}

async fn ask(clusters: &ClusterCache, config: &Snapshot) -> Result<Versions, VersionsUnknown> {
    let unknown = |e: stage_cluster::ClusterError| VersionsUnknown(e.to_string());
    let cluster = clusters.get(config).map_err(unknown)?;
    let workflows = crate::cluster::workflows(config).map_err(unknown)?;
    let report = stage_cluster::setup::check(&cluster.remote, &cluster.layout, &workflows, &[])
        .await
        .map_err(unknown)?;
    Ok(report
        .workflows
        .into_iter()
        .map(|w| (w.key, w.available))
        .collect())
}

/// The longest version name.
pub const MAX_CHARS: usize = 64;

/// Whether `v` can be a container version: it becomes part of a file name on the cluster
/// (`<image>_<version>.sif`) and a job's environment, so 1 to [`MAX_CHARS`] of
/// `A-Z a-z 0-9 . _ + -`, not starting with `.`.
pub fn well_formed(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= MAX_CHARS
        && !v.starts_with('.')
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
}

/// Checks the version an accepted submission chose (`workflow_version`) against the
/// cluster, and spells it as the cluster does; a submission that names no version, or the
/// configured one, asks nothing.
pub async fn confirm(
    on: OnCluster<'_>,
    config: &Snapshot,
    doc: &mut crate::intake::SubmissionDoc,
) -> Result<(), crate::intake::IntakeError> {
    let (Some(asked), Some(wf)) = (&doc.workflow_version, config.registry.get(&doc.workflow))
    else {
        return Ok(());
    };
    let found = if same_version(asked, &wf.version) {
        None
    } else {
        Some(on.versions(config).await)
    };
    let chosen = resolve(wf, asked, found.as_ref().map(|r| r.as_deref())).map_err(|message| {
        crate::intake::IntakeError::Invalid(vec![crate::intake::FieldError {
            field: "workflow_version".into(),
            message,
        }])
    })?;
    doc.workflow_version = Some(chosen);
    Ok(())
}

/// The version a submission runs: the one it chose, else the configured one.
pub fn chosen<'a>(doc: &'a crate::intake::SubmissionDoc, wf: &'a ResolvedWorkflow) -> &'a str {
    doc.workflow_version.as_deref().unwrap_or(&wf.version)
}

/// `v1.2.3` and `1.2.3` are the same version (BIOMERO's tags carry the `v`, its users often
/// do not).
pub fn same_version(a: &str, b: &str) -> bool {
    a.trim_start_matches('v') == b.trim_start_matches('v')
}

/// Orders versions the way people read them: numbers by value (`v1.10` after `v1.9`).
pub fn compare(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.trim_start_matches('v'), b.trim_start_matches('v'));
    loop {
        match (a.is_empty(), b.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        let (x, rest_a) = segment(a);
        let (y, rest_b) = segment(b);
        let order = match (x.parse::<u128>(), y.parse::<u128>()) {
            (Ok(m), Ok(n)) => m.cmp(&n),
            _ => x.cmp(y),
        };
        if order != Ordering::Equal {
            return order;
        }
        (a, b) = (rest_a, rest_b);
    }
}

/// The leading run of digits, or of anything else.
fn segment(s: &str) -> (&str, &str) {
    let digits = s.starts_with(|c: char| c.is_ascii_digit());
    let end = s
        .find(|c: char| c.is_ascii_digit() != digits)
        .unwrap_or(s.len());
    s.split_at(end)
}

/// The versions a run of `wf` may choose, as the script offers them: the configured one
/// first when the cluster has it (its descriptor is the one the parameters follow), then
/// the others, newest first.
pub fn offered(wf: &ResolvedWorkflow, available: &[String]) -> Vec<String> {
    let mut rest: Vec<&String> = available
        .iter()
        .filter(|v| !same_version(v, &wf.version))
        .collect();
    rest.sort_by(|a, b| compare(b, a));
    rest.dedup();
    let configured = available.iter().find(|v| same_version(v, &wf.version));
    configured.into_iter().chain(rest).cloned().collect()
}

/// The version a run of `wf` that asked for `asked` runs, spelled as the cluster has it: the
/// configured version needs no listing; any other must be in `on_cluster`. `Err` says why not.
pub fn resolve(
    wf: &ResolvedWorkflow,
    asked: &str,
    on_cluster: Option<Result<&Versions, &VersionsUnknown>>,
) -> Result<String, String> {
    if same_version(asked, &wf.version) {
        return Ok(wf.version.clone());
    }
    match on_cluster {
        None => Err(format!(
            "`{}` runs version {} here; {asked} was not looked up",
            wf.key, wf.version
        )),
        Some(Err(e)) => Err(format!(
            "{e}, so version {asked} of `{}` cannot be checked: leave the version out (or give {}) to run the configured version, or try again",
            wf.key, wf.version
        )),
        Some(Ok(v)) => {
            let present = v.get(&wf.key).map(Vec::as_slice).unwrap_or_default();
            present
                .iter()
                .find(|p| same_version(p, asked))
                .cloned()
                .ok_or_else(|| {
                    let listed = offered(wf, present);
                    format!(
                        "version {asked} of `{}` is not on the cluster (its image folder has {}); pick one of those, or pull it with `biomero-stage init --pull` after configuring it",
                        wf.key,
                        if listed.is_empty() {
                            "no container".to_owned()
                        } else {
                            listed.join(", ")
                        }
                    )
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_by_their_numbers() {
        let mut v = vec!["v1.9.0", "v1.10.0", "v1.2.3", "latest", "1.10.1"];
        v.sort_by(|a, b| compare(b, a));
        assert_eq!(v, ["latest", "1.10.1", "v1.10.0", "v1.9.0", "v1.2.3"]);
        assert_eq!(compare("v2", "2"), Ordering::Equal);
        assert_eq!(compare("v2.0", "v2"), Ordering::Greater);
    }

    /// The demo site's cluster is this host (the local executor): its image folders are real.
    #[tokio::test]
    async fn versions_on_the_cluster_are_offered_resolved_and_others_refused_naming_them() {
        let d = tempfile::tempdir().unwrap();
        let config = crate::test_site::demo_snapshot(d.path()).await;
        let wf = config.registry.get("threshold").unwrap();
        let images = crate::test_site::put_containers(
            &config,
            "threshold",
            &["v1.0.0", "v0.9.0", "v1.10.0"],
        );
        std::fs::write(images.join("notes.txt"), b"not a container").unwrap();
        let (clusters, cache) = (ClusterCache::default(), VersionCache::default());
        let on = OnCluster {
            clusters: &clusters,
            cache: &cache,
        };
        let found = on.versions(&config).await.unwrap();
        // the configured version first, then the others newest first
        assert_eq!(
            offered(wf, &found["threshold"]),
            ["v1.0.0", "v1.10.0", "v0.9.0"]
        );
        // a listing is reused while fresh: a container added now is not seen yet
        crate::test_site::put_containers(&config, "threshold", &["v2.0.0"]);
        assert_eq!(on.versions(&config).await.unwrap(), found);
        assert_eq!(resolve(wf, "1.0.0", None), Ok("v1.0.0".to_owned()));
        assert_eq!(
            resolve(wf, "0.9.0", Some(Ok(&found))),
            Ok("v0.9.0".to_owned())
        );
        let refused = resolve(wf, "v0.8.0", Some(Ok(&found))).unwrap_err();
        assert!(
            refused.contains("v0.8.0") && refused.contains("v1.0.0, v1.10.0, v0.9.0"),
            "{refused}"
        );
        let unknown = VersionsUnknown("ssh: connection refused".into());
        let refused = resolve(wf, "v0.9.0", Some(Err(&unknown))).unwrap_err();
        assert!(
            refused.contains("connection refused") && refused.contains("v1.0.0"),
            "{refused}"
        );
    }
}
