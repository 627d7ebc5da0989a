//! Configuration of biomero-stage.
//!
//! biomero-stage adopts an existing BIOMERO deployment without new
//! configuration: it reads BIOMERO's own `slurm-config.ini` (the file the
//! OMERO.biomero Admin tab writes) with BIOMERO's search order, dialect,
//! defaults and environment overrides ([`slurm`]), fetches each workflow's
//! descriptor ([`descriptor`]), and decides each workflow's input mode as
//! OMERO.biomero does ([`mode`], [`registry`]). Its own few settings live in
//! `biomero-stage.toml` ([`settings`]). [`live`] keeps all of it current while
//! the daemon runs.
//!
//! Nothing in this crate talks to the cluster, the queue or OMERO.

pub mod ciphers;
pub mod descriptor;
pub mod env;
pub mod error;
pub mod ini;
pub mod layered;
pub mod live;
pub mod location;
pub mod mode;
pub mod pathmap;
pub mod registry;
pub mod sbatch;
pub mod search;
pub mod settings;
pub mod slurm;
pub mod ui;
pub mod values;
pub mod workflows;

pub use env::Environment;
pub use error::{ConfigError, ConfigErrors, Warning};
pub use live::{ConfigSources, ConfigVersion, LiveConfig, LoadError, Snapshot};
pub use location::{Located, Location};
pub use mode::{InputMode, ModeDecision};
pub use registry::{Registry, ResolvedWorkflow};
pub use settings::{NgffVersion, StageSettings};
pub use slurm::SlurmConfig;
