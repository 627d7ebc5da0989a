//! The cluster side of biomero-stage: SSH to the `[SSH] host` alias with the
//! system OpenSSH client, BIOMERO's folder layout, resumable verified
//! transfers, job submission and follow-up with Slurm, and the `init` /
//! `check-setup` that BIOMERO's "Slurm Init" and "Slurm Check Setup" do.
//!
//! - [`ssh`]: the connection (one multiplexed master, reconnect on loss, quoted arguments),
//!   asking for AES-GCM first where the CPU has AES ([`ssh_ciphers`]);
//! - [`layout`]: where things live on the cluster (docs/contracts.md#the-job);
//! - [`transfer`]: upload and download (tar over one channel, SFTP, or a local copy), with [`cksum`];
//! - [`slurm`]: sbatch, status (sacct, or squeue/scontrol without accounting), logs, scancel;
//! - [`transport`] and [`executor`]: the two strategies (SSH tar or a mounted copy; Slurm or a
//!   local process), chosen once per configuration by [`strategy`], with [`blocking`] the one
//!   bridge to blocking file work;
//! - [`local_job`]: the local executor's mechanics (the job script run on this host, for the demo);
//! - [`jobscript`]: the generated BIAFLOWS job script;
//! - [`setup`]: init and check-setup.

pub mod blocking;
pub mod cksum;
pub mod error;
pub mod executor;
pub mod jobscript;
pub mod layout;
pub mod local_job;
pub mod setup;
pub mod slurm;
pub mod ssh;
pub mod ssh_ciphers;
pub mod strategy;
pub mod transfer;
pub mod transport;

pub use error::{ClusterError, Result};
pub use executor::{Executor, Observed};
pub use layout::Layout;
pub use ssh::{Remote, SshTarget};
pub use strategy::Strategies;
pub use transport::Transport;
