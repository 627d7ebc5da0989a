//! The transport and executor of a configuration, chosen once when it loads.
//!
//! | settings | transport | executor |
//! |---|---|---|
//! | `executor = "slurm"` | [`SshTar`] | [`Slurm`] |
//! | `executor = "slurm"`, `local_data_path` set | [`MountedCopy`] | [`Slurm`] |
//! | `executor = "local"` | [`MountedCopy`] (`local_data_path`, else `slurm_data_path`) | [`LocalProcess`] |

use std::path::PathBuf;
use std::sync::Arc;

use stage_config::settings::Executor as ExecutorSetting;

use crate::error::{ClusterError, Result};
use crate::executor::{Executor, LocalProcess, Slurm};
use crate::layout::Layout;
use crate::slurm::watch::Watcher;
use crate::ssh::Remote;
use crate::transport::{MountedCopy, SshTar, Transport};

/// The two strategies of one configuration.
#[derive(Debug, Clone)]
pub struct Strategies {
    /// Moves the job's files.
    pub transport: Arc<dyn Transport>,
    /// Runs the job.
    pub executor: Arc<dyn Executor>,
}

/// What the choice depends on.
#[derive(Debug, Clone)]
pub struct Choice<'a> {
    /// The `executor` setting.
    pub executor: ExecutorSetting,
    /// `local_data_path`: where this host mounts `slurm_data_path`.
    pub local_data_path: Option<&'a PathBuf>,
    /// The cluster's folders.
    pub layout: &'a Layout,
    /// The SSH connection.
    pub remote: &'a Arc<Remote>,
    /// The job watcher on that connection.
    pub watcher: &'a Watcher,
}

impl Strategies {
    /// Chooses the strategies of a configuration; refuses a local executor
    /// without a local data path, naming the setting to fix.
    pub fn choose(c: &Choice<'_>) -> Result<Self> {
        let local = c.executor == ExecutorSetting::Local;
        if local && c.local_data_path.is_none() && !c.layout.data_path.starts_with('/') {
            return Err(ClusterError::Invalid(format!(
                "executor = \"local\" runs jobs on this host: slurm_data_path `{}` must be an absolute local folder (or set local_data_path)",
                c.layout.data_path
            )));
        }
        let mount = c
            .local_data_path
            .cloned()
            .or_else(|| local.then(|| PathBuf::from(&c.layout.data_path)));
        let transport: Arc<dyn Transport> = match &mount {
            Some(m) => Arc::new(MountedCopy {
                layout: c.layout.clone(),
                mount: m.clone(),
            }),
            None => Arc::new(SshTar {
                remote: c.remote.clone(),
                layout: c.layout.clone(),
            }),
        };
        let executor: Arc<dyn Executor> = match (c.executor, mount) {
            (ExecutorSetting::Local, Some(m)) => Arc::new(LocalProcess {
                layout: c.layout.clone(),
                mount: m,
            }),
            _ => Arc::new(Slurm {
                remote: c.remote.clone(),
                watcher: c.watcher.clone(),
            }),
        };
        Ok(Strategies {
            transport,
            executor,
        })
    }
}
