//! Where a configuration value came from.
//!
//! Every value biomero-stage reads carries its origin, so that an error or a
//! warning can say "`/etc/slurm-config.ini` line 42" or "environment variable
//! `BIOMERO_GPU_GRES`" instead of leaving the admin to guess which of the four
//! layered files, or the environment, is to blame.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

/// The origin of one configuration value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Location {
    /// A line of a file (1-based).
    File {
        /// The file.
        path: Arc<Path>,
        /// The line, counting from 1.
        line: u32,
    },
    /// An environment variable.
    Env {
        /// The variable's name.
        var: String,
    },
    /// A built-in default.
    Default,
}

impl Location {
    /// A line in a file.
    pub fn file(path: &Arc<Path>, line: u32) -> Self {
        Location::File {
            path: Arc::clone(path),
            line,
        }
    }

    /// An environment variable.
    pub fn env(var: impl Into<String>) -> Self {
        Location::Env { var: var.into() }
    }

    /// The file this location points into, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Location::File { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The line this location points at, if it is a file location.
    pub fn line(&self) -> Option<u32> {
        match self {
            Location::File { line, .. } => Some(*line),
            _ => None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File { path, line } => write!(f, "{}:{line}", path.display()),
            Location::Env { var } => write!(f, "environment variable {var}"),
            Location::Default => f.write_str("built-in default"),
        }
    }
}

/// A value together with the place it was read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Where it came from.
    pub at: Location,
}

impl<T> Located<T> {
    /// Pairs a value with its origin.
    pub fn new(value: T, at: Location) -> Self {
        Located { value, at }
    }

    /// A built-in default value.
    pub fn default_value(value: T) -> Self {
        Located {
            value,
            at: Location::Default,
        }
    }

    /// Transforms the value, keeping the origin.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Located<U> {
        Located {
            value: f(self.value),
            at: self.at,
        }
    }
}

/// A path shared by many locations (cheap to clone).
pub(crate) fn shared_path(path: &Path) -> Arc<Path> {
    Arc::from(PathBuf::from(path).into_boxed_path())
}
