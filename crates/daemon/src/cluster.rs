//! The cluster as the running daemon sees it: one SSH connection (one
//! multiplexed master) and one job watcher per `[SSH] host`, kept between
//! steps and rebuilt when a configuration reload changes the host, the ssh
//! config file or the follow settings; plus what `init` and `check-setup`
//! need from the workflow registry.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use stage_cluster::setup::{ConverterSetup, WorkflowSetup};
use stage_cluster::slurm::status::StatusQuery;
use stage_cluster::slurm::watch::Watcher;
use stage_cluster::strategy::Choice;
use stage_cluster::{ClusterError, Executor, Layout, Remote, SshTarget, Strategies, Transport};
use stage_config::live::Snapshot;
use stage_config::registry::ResolvedWorkflow;

/// The cluster of the configuration in force.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// The SSH connection (init, check-setup).
    pub remote: Arc<Remote>,
    /// Where things live on the cluster.
    pub layout: Layout,
    /// Moves the job's files (SSH tar, or a copy into the mounted data path).
    pub transport: Arc<dyn Transport>,
    /// Runs the job (Slurm, or a local process).
    pub executor: Arc<dyn Executor>,
    /// The sacct window.
    pub since: String,
}

type Key = (Option<SshTarget>, StatusQuery, Duration);

/// Connections built from settings, cached while those settings stay the same, and the
/// cluster (with its strategies) chosen once per configuration.
#[derive(Default)]
pub struct ClusterCache {
    inner: Mutex<Option<(Key, Arc<Remote>, Watcher)>>,
    chosen: Mutex<Option<(Loaded, Cluster)>>,
}

/// Which configuration a cluster was chosen for: its generation and load time.
type Loaded = (u64, std::time::SystemTime);

impl std::fmt::Debug for ClusterCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCache").finish_non_exhaustive()
    }
}

/// The SSH target of a configuration.
pub fn target(snapshot: &Snapshot) -> SshTarget {
    let s = &snapshot.settings.settings;
    SshTarget {
        host: snapshot.slurm.ssh.host.value.clone(),
        config_file: s.ssh_config_file.clone(),
        control_dir: s.state_dir.join("ssh"),
        connect_timeout: Duration::from_secs(s.ssh_connect_timeout_secs),
        ciphers: stage_cluster::ssh_ciphers::resolve(&s.ssh_ciphers),
    }
}

/// The cluster of a configuration: the `[SSH] host` alias, or this host for the local executor.
pub fn remote(snapshot: &Snapshot) -> Remote {
    if snapshot.settings.settings.executor == stage_config::settings::Executor::Local {
        Remote::local()
    } else {
        Remote::new(target(snapshot))
    }
}

/// The sacct window (`-S`): `sacct_start_time`, else `sacct_days_ago`, else 30 days.
pub fn sacct_since(snapshot: &Snapshot) -> String {
    let slurm = &snapshot.slurm.slurm;
    if let Some(t) = &slurm.sacct_start_time {
        t.value.clone()
    } else if let Some(d) = &slurm.sacct_days_ago {
        format!("now-{}days", d.value)
    } else {
        "now-30days".to_owned()
    }
}

impl ClusterCache {
    /// The cluster of `snapshot` (connecting lazily: the first command connects); its
    /// transport and executor are chosen the first time a configuration is asked about.
    pub fn get(&self, snapshot: &Snapshot) -> Result<Cluster, ClusterError> {
        let loaded: Loaded = (snapshot.generation, snapshot.loaded_at);
        let mut chosen = self
            .chosen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, c)) = chosen.as_ref()
            && *at == loaded
        {
            return Ok(c.clone());
        }
        let cluster = self.choose(snapshot)?;
        *chosen = Some((loaded, cluster.clone()));
        Ok(cluster)
    }

    fn choose(&self, snapshot: &Snapshot) -> Result<Cluster, ClusterError> {
        let s = &snapshot.settings.settings;
        let layout = Layout::from_slurm(&snapshot.slurm.slurm)?;
        let since = sacct_since(snapshot);
        let key: Key = (
            (s.executor != stage_config::settings::Executor::Local).then(|| target(snapshot)),
            StatusQuery {
                since: since.clone(),
                accounting: s.slurm_accounting,
            },
            Duration::from_secs(s.follow_poll_secs),
        );
        let (remote, watcher) = {
            let mut c = self
                .inner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match c.as_ref() {
                Some((k, r, w)) if *k == key => (r.clone(), w.clone()),
                _ => {
                    let remote = Arc::new(key.0.clone().map_or_else(Remote::local, Remote::new));
                    let watcher = Watcher::spawn(remote.clone(), key.1.clone(), key.2);
                    *c = Some((key, remote.clone(), watcher.clone()));
                    (remote, watcher)
                }
            }
        };
        let Strategies {
            transport,
            executor,
        } = Strategies::choose(&Choice {
            executor: s.executor,
            local_data_path: s.local_data_path.as_ref(),
            layout: &layout,
            remote: &remote,
            watcher: &watcher,
        })?;
        Ok(Cluster {
            remote,
            layout,
            transport,
            executor,
            since,
        })
    }
}

/// What `init` and `check-setup` need to know about one workflow.
pub fn workflow_setup(wf: &ResolvedWorkflow) -> Result<WorkflowSetup, ClusterError> {
    let generated_script = if wf.job_script_generated {
        Some(stage_cluster::jobscript::generate(
            &wf.key,
            wf.descriptor.as_ref(),
        )?)
    } else {
        None
    };
    Ok(WorkflowSetup {
        key: wf.key.clone(),
        folder: wf.folder.clone(),
        version: wf.version.clone(),
        image: wf
            .descriptor
            .as_ref()
            .and_then(|d| d.container_image.clone()),
        job_script: wf.job_script.clone(),
        generated_script,
    })
}

/// Every configured workflow, for `init` and `check-setup`.
pub fn workflows(snapshot: &Snapshot) -> Result<Vec<WorkflowSetup>, ClusterError> {
    snapshot
        .registry
        .workflows
        .values()
        .map(workflow_setup)
        .collect()
}

/// The `[CONVERTERS]` of the configuration.
pub fn converters(snapshot: &Snapshot) -> Vec<ConverterSetup> {
    snapshot
        .slurm
        .converters
        .iter()
        .map(|c| ConverterSetup {
            name: c.name.clone(),
            image: c.image.clone(),
            version: c.version.clone(),
        })
        .collect()
}
