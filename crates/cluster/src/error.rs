//! Why something on the cluster did not work.
//!
//! Errors say which host, which command and what the remote side printed,
//! and whether trying again may help ([`ClusterError::is_transient`]): a
//! dropped connection or a full queue is retried, a refused key or a
//! rejected sbatch parameter is not.

use std::path::PathBuf;

/// Why something on the cluster did not work.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The SSH connection could not be made (unreachable host, refused key, unknown alias).
    #[error("cannot connect to `{host}` over SSH: {reason}")]
    Connect {
        /// The SSH alias.
        host: String,
        /// What ssh said.
        reason: String,
        /// Whether it may work later (network) or needs a fix (key, alias).
        transient: bool,
    },
    /// The connection dropped while a command ran.
    #[error("the SSH connection to `{host}` dropped during `{command}`: {reason}")]
    Dropped {
        /// The SSH alias.
        host: String,
        /// The command.
        command: String,
        /// What happened.
        reason: String,
    },
    /// A remote command failed.
    #[error("`{command}` failed on `{host}` (exit {code}): {stderr}")]
    Remote {
        /// The SSH alias.
        host: String,
        /// The command (program and arguments, quoted).
        command: String,
        /// Its exit code (-1: killed by a signal).
        code: i32,
        /// The last lines it printed on stderr.
        stderr: String,
    },
    /// sbatch refused the job.
    #[error("sbatch refused the job: {0}")]
    Sbatch(String),
    /// A transfer did not arrive intact.
    #[error("{what}: {reason}")]
    Verify {
        /// What was checked.
        what: String,
        /// What differed.
        reason: String,
    },
    /// The job produced nothing.
    #[error(
        "the job finished but wrote nothing into {0}; a workflow that succeeds writes its results there"
    )]
    EmptyOutput(String),
    /// Something the cluster answered could not be understood.
    #[error("cannot understand `{command}`: {reason}")]
    Parse {
        /// The command.
        command: String,
        /// What was unexpected.
        reason: String,
    },
    /// A value cannot be used (a path with a newline, a parameter that is not a name).
    #[error("{0}")]
    Invalid(String),
    /// A local file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A part of the daemon the step needs has stopped (the job watcher); a retry restarts it.
    #[error("{0}")]
    Unavailable(String),
    /// Stopped because the submission was cancelled.
    #[error("cancelled")]
    Cancelled,
}

impl ClusterError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            ClusterError::Connect { transient, .. } => *transient,
            ClusterError::Dropped { .. } | ClusterError::Unavailable(_) => true,
            ClusterError::Io { source, .. } => !never_works(source.kind()),
            ClusterError::Remote { code, .. } => *code == 255 || *code < 0,
            _ => false,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ClusterError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Whether an operating-system error says the same call will fail again, whenever it is
/// tried: an argument list or file too large, a name or argument the system refuses.
fn never_works(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        kind,
        K::ArgumentListTooLong
            | K::InvalidInput
            | K::InvalidFilename
            | K::FileTooLarge
            | K::Unsupported
    )
}

/// Result with [`ClusterError`].
pub type Result<T, E = ClusterError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::ClusterError;
    use std::io::{Error, ErrorKind};

    #[test]
    fn errors_that_will_never_work_are_not_retried() {
        let io = |kind| ClusterError::io("/x", Error::from(kind));
        for kind in [
            ErrorKind::ArgumentListTooLong,
            ErrorKind::InvalidInput,
            ErrorKind::FileTooLarge,
        ] {
            assert!(!io(kind).is_transient(), "{kind:?}");
        }
        for kind in [
            ErrorKind::StorageFull,
            ErrorKind::TimedOut,
            ErrorKind::NotFound,
            ErrorKind::ConnectionReset,
        ] {
            assert!(io(kind).is_transient(), "{kind:?}");
        }
        // E2BIG as the kernel reports it when a job's environment is too large
        assert!(!ClusterError::io("/x", Error::from_raw_os_error(7)).is_transient());
    }
}
