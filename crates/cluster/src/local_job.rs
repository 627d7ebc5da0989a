//! The local executor: a job script run directly on this host instead of
//! through Slurm, for the demo and for trials without a cluster.
//!
//! The job's folder (`<slurm_data_path>/biomero_<id>`, a local folder) holds
//! its bookkeeping, so a restarted daemon finds its job again and never starts
//! it twice:
//!
//! - `.local-job`: claimed (created exclusively) before the script starts;
//! - `.local-pid`: written by the job's own shell, its process id (the job id);
//! - `.local-exit`: written by that shell when the script ends, its exit code;
//! - `job.log`: the script's standard output and error.
//!
//! The script runs in its own process group with the job's environment, its
//! working directory the job's folder, like `sbatch` would run it.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::error::{ClusterError, Result};

/// The claim taken before the script starts.
const CLAIM: &str = ".local-job";
/// The job's process id, written by its shell.
const PID: &str = ".local-pid";
/// The script's exit code, written by its shell when it ends.
const EXIT: &str = ".local-exit";
/// The job's output.
pub const LOG: &str = "job.log";

/// How long a claim without a process id may be "starting" before it counts as abandoned.
const START_GRACE: Duration = Duration::from_secs(10);

/// The shell around the script: records its pid, runs the script, records the exit code
/// (143 when stopped). The trap is set before the pid is written, so a stop sent to a pid it
/// can read is always recorded. The script runs in the background and is waited for: a shell runs a
/// trap only once its foreground command has ended, so a stop that arrived just before the
/// script started would otherwise wait for the whole script.
const WRAPPER: &str = r#"trap 'echo 143 > .local-exit.tmp && mv .local-exit.tmp .local-exit; exit 143' TERM
echo $$ > .local-pid.tmp && mv .local-pid.tmp .local-pid
"$0" &
wait $!
code=$?
echo $code > .local-exit.tmp && mv .local-exit.tmp .local-exit
exit $code"#;

/// A started (or found) local job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalJob {
    /// Its process id, used as the job id.
    pub job_id: u64,
    /// Found already running or ended (a daemon restarted after starting it).
    pub adopted: bool,
}

/// Where a local job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalState {
    /// Still running.
    Running,
    /// Ended with this exit code.
    Exited(i32),
    /// Neither running nor ended with a code: killed from outside, or the host rebooted.
    Lost,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |source| ClusterError::io(path, source)
}

fn read_number(path: &Path) -> Result<Option<i64>> {
    match std::fs::read_to_string(path) {
        Ok(t) => t.trim().parse().map(Some).map_err(|_| {
            ClusterError::Invalid(format!(
                "{} holds `{}`, not a number; remove the job's folder to start it again",
                path.display(),
                t.trim()
            ))
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// The job's process id, once its shell wrote it.
fn pid(job_dir: &Path) -> Result<Option<u64>> {
    Ok(read_number(&job_dir.join(PID))?.and_then(|p| u64::try_from(p).ok()))
}

/// Starts `script` for the job in `job_dir` with `env`, unless this job was started before.
pub fn submit(job_dir: &Path, script: &Path, env: &[(String, String)]) -> Result<LocalJob> {
    if let Some(job_id) = pid(job_dir)? {
        return Ok(LocalJob {
            job_id,
            adopted: true,
        });
    }
    let meta = std::fs::metadata(script).map_err(|e| {
        ClusterError::Invalid(format!(
            "the job script {} cannot be read ({e}); check slurm_script_path and the workflow's _job",
            script.display()
        ))
    })?;
    if std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 == 0 {
        return Err(ClusterError::Invalid(format!(
            "the job script {} is not executable: chmod +x it",
            script.display()
        )));
    }
    let claim = job_dir.join(CLAIM);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&claim)
    {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            // claimed by a daemon that stopped before the script wrote its pid
            let age = std::fs::metadata(&claim)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .unwrap_or_default();
            if age < START_GRACE {
                return Err(ClusterError::io(
                    &claim,
                    std::io::Error::new(ErrorKind::WouldBlock, "the local job is starting"),
                ));
            }
            tracing::warn!(dir = %job_dir.display(), "an abandoned local job claim: starting the job");
        }
        Err(e) => return Err(io(&claim)(e)),
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(job_dir.join(LOG))
        .map_err(io(&job_dir.join(LOG)))?;
    let err = log.try_clone().map_err(io(&job_dir.join(LOG)))?;
    let mut child = std::os::unix::process::CommandExt::process_group(
        Command::new("/bin/sh")
            .arg("-c")
            .arg(WRAPPER)
            .arg(script)
            .current_dir(job_dir)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err),
        0,
    )
    .spawn()
    .map_err(io(script))?;
    let job_id = u64::from(child.id());
    // reap it when it ends, so that an ended job is not a zombie that looks alive
    std::thread::spawn(move || child.wait());
    // the pid file makes a restarted daemon adopt the job rather than start it again
    let deadline = Instant::now() + START_GRACE;
    while pid(job_dir)?.is_none() && exit_code(job_dir)?.is_none() {
        if Instant::now() > deadline {
            return Err(ClusterError::Invalid(format!(
                "the local job {job_id} in {} did not start; see {}",
                job_dir.display(),
                job_dir.join(LOG).display()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(LocalJob {
        job_id,
        adopted: false,
    })
}

fn exit_code(job_dir: &Path) -> Result<Option<i32>> {
    Ok(read_number(&job_dir.join(EXIT))?.and_then(|c| i32::try_from(c).ok()))
}

fn alive(pid: u64) -> bool {
    // a zombie has a /proc entry too: its state is `Z`
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// The live processes of process group `pgid` (the job's wrapper leads its group).
fn group_members(pgid: u64) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u64>().ok()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses
                let fields: Vec<&str> = stat
                    .rsplit_once(')')
                    .map(|(_, rest)| rest.split_whitespace().collect())
                    .unwrap_or_default();
                matches!(fields.as_slice(), [state, _, pgrp, ..]
                    if *state != "Z" && *state != "X" && pgrp.parse::<u64>() == Ok(pgid))
            })
        })
        .collect()
}

/// Where the job in `job_dir` is. A job has ended only when its whole process group has:
/// a script that exits while something it started still runs (a forked child writing into
/// `data/out`) has that group killed, and counts as running until the group is gone, so
/// its outputs never change after it is collected.
pub fn state(job_dir: &Path) -> Result<LocalState> {
    if let Some(code) = exit_code(job_dir)? {
        if let Some(p) = pid(job_dir)? {
            let left = group_members(p);
            if !left.is_empty() {
                tracing::warn!(
                    job = p,
                    processes = left.len(),
                    "the local job's script ended but processes it started still run; stopping them"
                );
                let _ = Command::new("/bin/sh")
                    .args(["-c", "kill -s KILL -- -\"$0\"", &p.to_string()])
                    .status();
                return Ok(LocalState::Running);
            }
        }
        return Ok(LocalState::Exited(code));
    }
    match pid(job_dir)? {
        Some(p) if alive(p) => Ok(LocalState::Running),
        // it may have ended between the two looks
        _ => Ok(exit_code(job_dir)?.map_or(LocalState::Lost, LocalState::Exited)),
    }
}

/// The job's log.
pub fn log_path(job_dir: &Path) -> PathBuf {
    job_dir.join(LOG)
}

/// The last `lines` lines of the job's log (empty when there is none).
pub fn tail(job_dir: &Path, lines: usize) -> String {
    let text = std::fs::read(log_path(job_dir)).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Stops the job (SIGTERM to its process group).
pub fn cancel(job_dir: &Path) -> Result<()> {
    let Some(p) = pid(job_dir)? else {
        return Ok(());
    };
    if !alive(p) {
        return Ok(());
    }
    let status = Command::new("/bin/sh")
        .args(["-c", "kill -s TERM -- -\"$0\"", &p.to_string()])
        .status()
        .map_err(io(job_dir))?;
    if status.success() || !alive(p) {
        Ok(())
    } else {
        Err(ClusterError::Invalid(format!(
            "cannot stop the local job {p} ({status})"
        )))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn script(dir: &Path, body: &str) -> PathBuf {
        let p = dir.join("job.sh");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        p
    }

    fn wait_end(job: &Path) -> LocalState {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let s = state(job).unwrap();
            if s != LocalState::Running || Instant::now() > until {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_job_runs_once_with_its_environment_and_is_adopted_after() {
        let d = tempfile::tempdir().unwrap();
        let job = d.path().join("biomero_1");
        std::fs::create_dir_all(&job).unwrap();
        let s = script(
            d.path(),
            "echo \"run $DATA_PATH\" >> runs.txt; echo 'half 50%'; exit 4",
        );
        let env = vec![("DATA_PATH".to_owned(), "/x/y".to_owned())];
        let first = submit(&job, &s, &env).unwrap();
        assert!(!first.adopted);
        assert_eq!(wait_end(&job), LocalState::Exited(4));
        let again = submit(&job, &s, &env).unwrap();
        assert_eq!(
            again,
            LocalJob {
                job_id: first.job_id,
                adopted: true
            }
        );
        assert_eq!(
            std::fs::read_to_string(job.join("runs.txt")).unwrap(),
            "run /x/y\n"
        );
        assert_eq!(tail(&job, 1), "half 50%");
    }

    #[test]
    fn a_job_ends_only_with_everything_it_started() {
        let d = tempfile::tempdir().unwrap();
        let job = d.path().join("forks");
        std::fs::create_dir_all(job.join("out")).unwrap();
        // the script exits 0 at once; its child would write into the outputs 2 s later
        let s = script(
            d.path(),
            "(sleep 2; echo late > out/late.txt) &\necho started > out/first.txt\nexit 0",
        );
        let j = submit(&job, &s, &[]).unwrap();
        assert_eq!(wait_end(&job), LocalState::Exited(0));
        assert!(group_members(j.job_id).is_empty(), "the child was stopped");
        std::thread::sleep(Duration::from_secs(3));
        assert!(job.join("out/first.txt").exists());
        assert!(
            !job.join("out/late.txt").exists(),
            "nothing is written after the job ended"
        );
    }

    #[test]
    fn a_cancelled_job_ends_and_a_killed_one_is_lost() {
        let d = tempfile::tempdir().unwrap();
        let s = script(d.path(), "sleep 30");
        let job = d.path().join("a");
        std::fs::create_dir_all(&job).unwrap();
        submit(&job, &s, &[]).unwrap();
        assert_eq!(state(&job).unwrap(), LocalState::Running);
        cancel(&job).unwrap();
        assert_eq!(wait_end(&job), LocalState::Exited(143));
        // the shell itself killed: no exit code is ever written
        let job = d.path().join("b");
        std::fs::create_dir_all(&job).unwrap();
        let j = submit(&job, &s, &[]).unwrap();
        Command::new("/bin/sh")
            .args(["-c", "kill -s KILL -- -\"$0\"", &j.job_id.to_string()])
            .status()
            .unwrap();
        assert_eq!(wait_end(&job), LocalState::Lost);
    }

    /// A stop that arrives the moment the job has started (its shell may not have started
    /// the script yet) ends it at once, not when the script would have ended.
    #[test]
    fn a_job_stopped_as_it_starts_ends_at_once() {
        let d = tempfile::tempdir().unwrap();
        let s = script(d.path(), "sleep 30");
        for i in 0..20 {
            let job = d.path().join(format!("j{i}"));
            std::fs::create_dir_all(&job).unwrap();
            submit(&job, &s, &[]).unwrap();
            cancel(&job).unwrap();
            let t = Instant::now();
            assert_eq!(wait_end(&job), LocalState::Exited(143), "attempt {i}");
            assert!(t.elapsed() < Duration::from_secs(10), "attempt {i}");
        }
    }

    #[test]
    fn a_script_that_cannot_run_is_refused_before_anything_starts() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("job.sh");
        std::fs::write(&s, "#!/bin/sh\n").unwrap();
        let e = submit(d.path(), &s, &[]).unwrap_err().to_string();
        assert!(e.contains("chmod +x"), "{e}");
        assert!(!d.path().join(CLAIM).exists());
        let e = submit(d.path(), &d.path().join("nope.sh"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("slurm_script_path"), "{e}");
    }
}
