//! SSH to the cluster with the system OpenSSH client (the `openssh` crate):
//! the `[SSH] host` alias, `~/.ssh/config` (or a configured file), ProxyJump,
//! agent and keys are honoured exactly as `ssh` honours them.
//!
//! One multiplexed master per host is shared by every step and every
//! command; when it dies (network cut, sshd restart) the next command starts a
//! new one. Remote commands are built from argument lists: every argument is
//! quoted for the POSIX shell on the far side, so a value from a
//! configuration file, a submission or a web form is never interpreted. The
//! few shell snippets the crate runs are constants of this crate that take
//! their values as positional parameters (`sh -c '…' sh "$1" "$2"`).

use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use tokio::sync::Mutex;

use crate::error::{ClusterError, Result};

/// How to reach the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// The alias (`[SSH] host`).
    pub host: String,
    /// An ssh config file instead of `~/.ssh/config`.
    pub config_file: Option<PathBuf>,
    /// Where the master's control socket lives.
    pub control_dir: PathBuf,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// A `Ciphers` list to ask for unless the ssh config sets one (see [`crate::ssh_ciphers`]);
    /// `None`: OpenSSH's own order.
    pub ciphers: Option<stage_config::ciphers::CipherList>,
}

/// A connection to the cluster, reconnecting on loss; or, for the local executor, this host.
#[derive(Debug)]
pub struct Remote {
    target: SshTarget,
    /// Commands run on this host, not over SSH (`executor = "local"`).
    local: bool,
    session: Mutex<Option<Arc<Session>>>,
}

/// What [`Remote::host`] says of this host.
pub const LOCAL_HOST: &str = "localhost (executor = \"local\")";

/// Quotes one word for a POSIX shell.
pub fn quote(word: &str) -> String {
    // shlex refuses only a NUL byte, which no argument can hold (the kernel ends it there)
    match shlex::try_quote(word) {
        Ok(q) => q.into_owned(),
        Err(_) => quote(&word.replace('\0', "")),
    }
}

/// A command line for messages: program and quoted arguments.
pub fn display(program: &str, args: &[String]) -> String {
    std::iter::once(program.to_owned())
        .chain(args.iter().map(|a| quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn tail(bytes: &[u8], lines: usize) -> String {
    let s = String::from_utf8_lossy(bytes);
    let v: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    v[v.len().saturating_sub(lines)..].join(" | ")
}

impl Remote {
    /// A connection to `target` (made on first use).
    pub fn new(target: SshTarget) -> Self {
        Remote {
            target,
            local: false,
            session: Mutex::new(None),
        }
    }

    /// This host: commands run here, as the daemon's user (the local executor's cluster).
    pub fn local() -> Self {
        Remote {
            target: SshTarget {
                host: LOCAL_HOST.to_owned(),
                config_file: None,
                control_dir: PathBuf::new(),
                connect_timeout: Duration::from_secs(1),
                ciphers: None,
            },
            local: true,
            session: Mutex::new(None),
        }
    }

    /// The alias (or [`LOCAL_HOST`]).
    pub fn host(&self) -> &str {
        &self.target.host
    }

    /// Whether commands run on this host.
    pub fn is_local(&self) -> bool {
        self.local
    }

    fn connect_error(&self, e: &openssh::Error) -> ClusterError {
        let mut reason = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            reason.push_str(": ");
            reason.push_str(&s.to_string());
            src = s.source();
        }
        let lower = reason.to_ascii_lowercase();
        let permanent = [
            "permission denied",
            "could not resolve hostname",
            "host key verification failed",
            "no such file",
            "bad configuration",
            "unsupported option",
        ]
        .iter()
        .any(|p| lower.contains(p));
        let hint = if lower.contains("permission denied") {
            " (the key was refused: check IdentityFile for this alias and the cluster's authorized_keys)"
        } else if lower.contains("could not resolve hostname") {
            " (unknown host: is the alias defined in the ssh config biomero-stage uses?)"
        } else {
            ""
        };
        ClusterError::Connect {
            host: self.target.host.clone(),
            reason: format!("{}{hint}", reason.trim()),
            transient: !permanent,
        }
    }

    /// The live session, connecting (or reconnecting) when needed.
    pub async fn session(&self) -> Result<Arc<Session>> {
        let mut s = self.session.lock().await;
        if let Some(sess) = s.as_ref() {
            if sess.check().await.is_ok() {
                return Ok(sess.clone());
            }
            tracing::warn!(host = %self.target.host, "SSH master gone; reconnecting");
        }
        std::fs::create_dir_all(&self.target.control_dir)
            .map_err(|e| ClusterError::io(&self.target.control_dir, e))?;
        let mut b = SessionBuilder::default();
        b.known_hosts_check(KnownHosts::Add)
            .control_directory(&self.target.control_dir)
            .connect_timeout(self.target.connect_timeout)
            .server_alive_interval(Duration::from_secs(15));
        if let Some(f) = self.master_config() {
            b.config_file(f);
        }
        let sess = Arc::new(
            b.connect_mux(&self.target.host)
                .await
                .map_err(|e| self.connect_error(&e))?,
        );
        tracing::info!(host = %self.target.host, "SSH master connected");
        *s = Some(sess.clone());
        Ok(sess)
    }

    /// The ssh config the master reads: the configured one, or, with a cipher preference,
    /// a file in the control folder that includes it and asks for the ciphers. A preference
    /// that cannot be written is left out (with a warning), never the site's config.
    fn master_config(&self) -> Option<PathBuf> {
        let t = &self.target;
        // no cipher preference: the site's own ssh config as it is
        let Some(ciphers) = t.ciphers.as_ref() else {
            return t.config_file.clone();
        };
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let path = t.control_dir.join("ssh_config");
        let written =
            crate::ssh_ciphers::config_text(t.config_file.as_deref(), home.as_deref(), ciphers)
                .map_err(|e| e.to_string())
                .and_then(|text| {
                    stage_common::atomic::write(&path, text.as_bytes())
                        .map_err(|e| format!("{}: {e}", path.display()))
                });
        match written {
            Ok(()) => Some(path),
            Err(why) => {
                tracing::warn!(host = %t.host, %why, "the cipher preference is left out; OpenSSH's order is used");
                t.config_file.clone()
            }
        }
    }

    /// Forgets the session (after a drop), so the next command reconnects.
    pub async fn reset(&self) {
        *self.session.lock().await = None;
    }

    /// Runs `program args…` and returns its output (any exit code); the connection is retried once if it dropped.
    pub async fn output(&self, program: &str, args: &[String]) -> Result<Output> {
        self.output_with_stdin(program, args, None).await
    }

    /// Like [`Remote::output`], feeding `stdin`.
    pub async fn output_with_stdin(
        &self,
        program: &str,
        args: &[String],
        stdin: Option<&[u8]>,
    ) -> Result<Output> {
        self.exec(program, args, stdin, 2).await
    }

    /// Runs a command that must not run twice (sbatch): a dropped connection is reported, never retried.
    pub async fn output_once(&self, program: &str, args: &[String]) -> Result<Output> {
        self.exec(program, args, None, 1).await
    }

    async fn exec(
        &self,
        program: &str,
        args: &[String],
        stdin: Option<&[u8]>,
        attempts: u32,
    ) -> Result<Output> {
        if self.local {
            return self.exec_here(program, args, stdin).await;
        }
        let mut last = String::new();
        for attempt in 0..attempts {
            let sess = self.session().await?;
            let mut cmd = sess.command(program);
            cmd.args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .stdin(if stdin.is_some() {
                    Stdio::piped()
                } else {
                    Stdio::null()
                });
            let r = async {
                let mut child = cmd.spawn().await?;
                if let (Some(data), Some(mut w)) = (stdin, child.stdin().take()) {
                    use tokio::io::AsyncWriteExt as _;
                    w.write_all(data).await.map_err(openssh::Error::ChildIo)?;
                    w.shutdown().await.map_err(openssh::Error::ChildIo)?;
                }
                child.wait_with_output().await
            }
            .await;
            match r {
                Ok(o) => return Ok(o),
                Err(e) => {
                    last = e.to_string();
                    tracing::warn!(host = %self.target.host, program, attempt, error = %e, "remote command lost its connection");
                    self.reset().await;
                }
            }
        }
        Err(ClusterError::Dropped {
            host: self.target.host.clone(),
            command: display(program, args),
            reason: last,
        })
    }

    /// Runs a command on this host (the local executor).
    async fn exec_here(
        &self,
        program: &str,
        args: &[String],
        stdin: Option<&[u8]>,
    ) -> Result<Output> {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true);
        let io = |e: std::io::Error| ClusterError::Dropped {
            host: self.target.host.clone(),
            command: display(program, args),
            reason: e.to_string(),
        };
        let mut child = cmd.spawn().map_err(io)?;
        if let (Some(data), Some(mut w)) = (stdin, child.stdin.take()) {
            use tokio::io::AsyncWriteExt as _;
            w.write_all(data).await.map_err(io)?;
            w.shutdown().await.map_err(io)?;
        }
        child.wait_with_output().await.map_err(io)
    }

    /// Runs `program args…` and returns its stdout; a non-zero exit is an error with the stderr tail.
    pub async fn run(&self, program: &str, args: &[String]) -> Result<String> {
        let o = self.output(program, args).await?;
        self.checked(program, args, &o)
    }

    /// The stdout of a finished command, or the error it ended with.
    pub fn checked(&self, program: &str, args: &[String], o: &Output) -> Result<String> {
        if o.status.success() {
            Ok(String::from_utf8_lossy(&o.stdout).into_owned())
        } else {
            Err(ClusterError::Remote {
                host: self.target.host.clone(),
                command: display(program, args),
                code: o.status.code().unwrap_or(-1),
                stderr: tail(&o.stderr, 6),
            })
        }
    }

    /// Runs one of this crate's fixed shell scripts with `args` as `$1…`.
    pub async fn script(&self, script: &str, args: &[String]) -> Result<String> {
        let mut all = vec!["-c".to_owned(), script.to_owned(), "sh".to_owned()];
        all.extend(args.iter().cloned());
        let o = self.output("sh", &all).await?;
        self.checked("sh -c", args, &o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_the_remote_shell() {
        assert_eq!(quote("plain-word_1.0"), "plain-word_1.0");
        // what a POSIX shell makes of each quoted word is the word itself, never a command
        for word in [
            "a b",
            "$(touch /tmp/x)",
            "it's",
            "`id`;ls",
            "\"$HOME\" \\ 'x'",
            "~user #c",
            "a\nb\tc",
            "*?[x]",
            "",
        ] {
            let out = std::process::Command::new("sh")
                .args(["-c", &format!("printf %s {}", quote(word))])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), word, "{word:?}");
        }
        assert_eq!(quote("a\0b"), "ab", "a NUL cannot reach an argument");
    }
}
