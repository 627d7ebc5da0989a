//! Errors and warnings of configuration loading.
//!
//! Loading never stops at the first problem: an admin who fixes one typo and
//! reloads only to meet the next one wastes a deployment window. Every problem
//! found is collected; errors make the configuration unusable (the last good one
//! stays in force), warnings are shown and the configuration is used.
//! Each message names the file and line (or the environment variable), the
//! value, and what to do about it.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::location::Location;

/// One problem that makes a configuration unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A file exists but cannot be read.
    #[error(
        "cannot read {}: {reason}; check that the file exists and that this user may read it",
        path.display()
    )]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// A file that was named explicitly does not exist.
    #[error("{} does not exist (named by {named_by}); fix the path or create the file", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
        /// Who named it: a command-line option or an environment variable.
        named_by: String,
    },
    /// None of the default locations holds a slurm-config.ini.
    #[error(
        "no slurm-config.ini found (looked in {looked_in}); create one (the OMERO.biomero Admin tab writes ~/slurm-config.ini) or pass --slurm-config"
    )]
    NoConfigFile {
        /// The paths searched, comma separated.
        looked_in: String,
    },
    /// The file is not UTF-8 text.
    #[error(
        "{}:{line}: not valid UTF-8 (first bad byte in column {column}); save the file as UTF-8",
        path.display()
    )]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Line of the first invalid byte.
        line: u32,
        /// Column (1-based, in bytes) of the first invalid byte.
        column: u32,
    },
    /// A line that is not INI syntax.
    #[error("{at}: {message}")]
    Syntax {
        /// The offending line.
        at: Location,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A section header repeated within one file.
    #[error(
        "{at}: section [{section}] appears twice in this file (first at line {first_line}); merge the two sections"
    )]
    DuplicateSection {
        /// The second occurrence.
        at: Location,
        /// The section name.
        section: String,
        /// Line of the first occurrence.
        first_line: u32,
    },
    /// A key repeated within one section of one file.
    #[error(
        "{at}: key `{key}` appears twice in section [{section}] (first at line {first_line}); keep only one"
    )]
    DuplicateKey {
        /// The second occurrence.
        at: Location,
        /// The section.
        section: String,
        /// The key.
        key: String,
        /// Line of the first occurrence.
        first_line: u32,
    },
    /// A `%` interpolation that cannot be resolved (Python configparser semantics).
    #[error("{at}: `{key}`: {message}")]
    Interpolation {
        /// The value's origin.
        at: Location,
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A value that should be a boolean.
    #[error("{at}: `{key}` = `{value}` is not a boolean; use true or false")]
    InvalidBool {
        /// The value's origin.
        at: Location,
        /// The key.
        key: String,
        /// The value as written.
        value: String,
    },
    /// A value that should be a whole number.
    #[error("{at}: `{key}` = `{value}` is not a whole number; write digits only, e.g. 7")]
    InvalidInteger {
        /// The value's origin.
        at: Location,
        /// The key.
        key: String,
        /// The value as written.
        value: String,
    },
    /// A `[UI]` toggle list that is not a JSON list of strings.
    #[error(
        "{at}: [UI] {key} must be a JSON list of workflow keys such as [\"cellpose\"], got `{value}` ({reason})"
    )]
    InvalidUiList {
        /// The value's origin.
        at: Location,
        /// The key (`zarr_workflows`, …).
        key: String,
        /// The value as written.
        value: String,
        /// What the JSON parser said.
        reason: String,
    },
    /// A workflow key that OMERO.biomero would not accept.
    #[error(
        "{at}: workflow key `{key}` {reason}; workflow names hold only letters, digits, '_', '-' and '.' (no spaces) and do not start with '.'"
    )]
    InvalidWorkflowKey {
        /// The line.
        at: Location,
        /// The key as written.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Both GPU resource defaults are set.
    #[error(
        "gpu_gres ({gres_at}) and gpu_gpus ({gpus_at}) are both set; Slurm takes --gres or --gpus for the GPU default, not both: remove one"
    )]
    GpuGresAndGpus {
        /// Where `gpu_gres` came from.
        gres_at: Location,
        /// Where `gpu_gpus` came from.
        gpus_at: Location,
    },
    /// `[SSH] host` is present but empty.
    #[error(
        "{at}: [SSH] host is empty; set it to the alias of your cluster in the SSH client config (e.g. host=slurm)"
    )]
    EmptySshHost {
        /// The line.
        at: Location,
    },
    /// An SBATCH parameter that is not safe or not well formed.
    #[error("{at}: SBATCH parameter `{key}={value}` refused: {reason}")]
    InvalidSbatch {
        /// The line (or environment variable).
        at: Location,
        /// The flag without `--`.
        key: String,
        /// The value as written.
        value: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// Any other value that does not fit its key.
    #[error("{at}: `{key}` = `{value}`: {reason}")]
    InvalidValue {
        /// The value's origin.
        at: Location,
        /// The key.
        key: String,
        /// The value as written.
        value: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
}

impl ConfigError {
    /// Where the error points, if it points at one place.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Syntax { at, .. }
            | ConfigError::DuplicateSection { at, .. }
            | ConfigError::DuplicateKey { at, .. }
            | ConfigError::Interpolation { at, .. }
            | ConfigError::InvalidBool { at, .. }
            | ConfigError::InvalidInteger { at, .. }
            | ConfigError::InvalidUiList { at, .. }
            | ConfigError::InvalidWorkflowKey { at, .. }
            | ConfigError::EmptySshHost { at }
            | ConfigError::InvalidSbatch { at, .. }
            | ConfigError::InvalidValue { at, .. } => Some(at),
            ConfigError::GpuGresAndGpus { gres_at, .. } => Some(gres_at),
            ConfigError::Unreadable { .. }
            | ConfigError::Missing { .. }
            | ConfigError::NoConfigFile { .. }
            | ConfigError::NotUtf8 { .. } => None,
        }
    }
}

/// All errors found while loading one configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [] => f.write_str("no errors"),
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} configuration errors:", many.len())?;
                for e in many {
                    write!(f, "\n  - {e}")?;
                }
                Ok(())
            }
        }
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

/// Something an admin should see, that does not stop the configuration from being used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Where it points, when it points at one place.
    pub at: Option<Location>,
    /// The workflow it concerns, if any.
    pub workflow: Option<String>,
    /// What was noticed and what to do about it.
    pub message: String,
}

impl Warning {
    /// A warning about one place in the configuration.
    pub fn at(at: Location, message: impl Into<String>) -> Self {
        Warning {
            at: Some(at),
            workflow: None,
            message: message.into(),
        }
    }

    /// A warning without a single place.
    pub fn general(message: impl Into<String>) -> Self {
        Warning {
            at: None,
            workflow: None,
            message: message.into(),
        }
    }

    /// Attaches the workflow this warning is about.
    #[must_use]
    pub fn for_workflow(mut self, key: &str) -> Self {
        self.workflow = Some(key.to_owned());
        self
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(at) = &self.at {
            write!(f, "{at}: ")?;
        }
        f.write_str(&self.message)
    }
}
