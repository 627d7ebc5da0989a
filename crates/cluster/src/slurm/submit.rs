//! Submitting a job exactly once.
//!
//! The job gets a name derived from the submission (`omero-job-<workflow>-<id>`).
//! Before `sbatch` runs, the queue and the accounting are asked for a job of
//! that name: a daemon that died right after sbatch — before it could record
//! the id — finds its job instead of submitting a second one. `sbatch` itself
//! is never retried on a dropped connection for the same reason; the next
//! attempt looks the job up first.
//!
//! The job's environment (docs/contracts.md#the-job) goes to sbatch as `env NAME=value …
//! sbatch --export=ALL …` — every value one quoted argument, whatever it
//! contains — or, with `env_file_submission`, as a file of `export` lines
//! (each value quoted) whose path is the script's first argument.

use crate::error::{ClusterError, Result};
use crate::ssh::{Remote, quote};

/// What to submit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    /// The job name (unique per submission).
    pub name: String,
    /// The job script on the cluster.
    pub script: String,
    /// sbatch options, `--flag=value`, in precedence order.
    pub sbatch_args: Vec<String>,
    /// The job's environment.
    pub env: Vec<(String, String)>,
    /// Write the environment to this file and pass it as `$1` instead.
    pub env_file: Option<String>,
}

/// A submitted (or found) job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// The Slurm job id.
    pub job_id: u64,
    /// Whether it was found already submitted.
    pub adopted: bool,
}

/// Checks an environment variable name.
pub fn check_env_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ClusterError::Invalid(format!(
            "`{}` cannot be an environment variable name for the job",
            name.escape_debug()
        )))
    }
}

/// Parses sbatch's answer: `--parsable` (`123` or `123;cluster`) or `Submitted batch job 123`.
pub fn parse_job_id(stdout: &str) -> Option<u64> {
    for line in stdout.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("Submitted batch job ") {
            return rest.split_whitespace().next()?.parse().ok();
        }
        if let Ok(id) = l.split(';').next().unwrap_or_default().parse() {
            return Some(id);
        }
    }
    None
}

/// The job of `name` already in the queue or the accounting, if any.
pub async fn find_by_name(r: &Remote, name: &str, since: &str) -> Result<Option<u64>> {
    let out = r
        .output(
            "squeue",
            &[
                "-h".into(),
                "--me".into(),
                "-n".into(),
                name.into(),
                "-o".into(),
                "%i".into(),
            ],
        )
        .await?;
    if out.status.success()
        && let Some(id) = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.trim().split('_').next()?.parse().ok())
    {
        return Ok(Some(id));
    }
    let out = r
        .output(
            "sacct",
            &[
                "-n".into(),
                "-X".into(),
                "-P".into(),
                "--name".into(),
                name.into(),
                "-S".into(),
                since.into(),
                "-o".into(),
                "JobID".into(),
            ],
        )
        .await?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().split('_').next()?.parse().ok())
            .max());
    }
    Ok(None)
}

const WRITE_ENV: &str = r#"umask 077 && mkdir -p -- "$(dirname -- "$1")" && cat > "$1""#;

/// Submits `spec` unless a job of its name exists (searched in the accounting from `since`).
pub async fn submit(r: &Remote, spec: &JobSpec, since: &str) -> Result<Submitted> {
    for (k, _) in &spec.env {
        check_env_name(k)?;
    }
    if let Some(id) = find_by_name(r, &spec.name, since).await? {
        tracing::info!(job = id, name = %spec.name, "found the job already submitted");
        return Ok(Submitted {
            job_id: id,
            adopted: true,
        });
    }
    let mut args: Vec<String> = Vec::new();
    let program;
    if let Some(file) = &spec.env_file {
        let body = spec.env.iter().fold(String::new(), |mut b, (k, v)| {
            b.push_str(&format!("export {k}={}\n", quote(v)));
            b
        });
        let o = r
            .output_with_stdin(
                "sh",
                &["-c".into(), WRITE_ENV.into(), "sh".into(), file.clone()],
                Some(body.as_bytes()),
            )
            .await?;
        r.checked("write the job's env file", std::slice::from_ref(file), &o)?;
        program = "sbatch";
    } else {
        program = "env";
        args.extend(spec.env.iter().map(|(k, v)| format!("{k}={v}")));
        args.push("sbatch".into());
        args.push("--export=ALL".into());
    }
    args.push("--parsable".into());
    args.push(format!("--job-name={}", spec.name));
    args.extend(spec.sbatch_args.iter().cloned());
    args.push("--output=omero-%j.log".into());
    args.push(spec.script.clone());
    if let Some(file) = &spec.env_file {
        args.push(file.clone());
    }
    let o = r.output_once(program, &args).await?;
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        return Err(ClusterError::Sbatch(
            err.lines()
                .filter(|l| !l.trim().is_empty())
                .collect::<Vec<_>>()
                .join(" | "),
        ));
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    let id = parse_job_id(&stdout).ok_or_else(|| ClusterError::Parse {
        command: "sbatch".into(),
        reason: format!("no job id in `{}`", stdout.trim()),
    })?;
    tracing::info!(job = id, name = %spec.name, "submitted");
    Ok(Submitted {
        job_id: id,
        adopted: false,
    })
}

/// `scancel <id>`.
pub async fn cancel(r: &Remote, job_id: u64) -> Result<()> {
    r.run("scancel", &[job_id.to_string()]).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_and_names() {
        assert_eq!(parse_job_id("123\n"), Some(123));
        assert_eq!(parse_job_id("77;lab\n"), Some(77));
        assert_eq!(parse_job_id("Submitted batch job 9\n"), Some(9));
        assert_eq!(parse_job_id("sbatch: error\n"), None);
        assert!(check_env_name("DIAMETER").is_ok());
        assert!(check_env_name("_X1").is_ok());
        for bad in ["1X", "A-B", "A B", "", "X;rm", "$(id)"] {
            assert!(check_env_name(bad).is_err(), "{bad}");
        }
    }
}
