//! Job states: `sacct -n -P -X -o JobID,State,ExitCode,End,Submit,Start -j a,b,c` for many
//! jobs in one query; where accounting is off, `squeue` for the live ones and
//! `scontrol show job` for the finished ones.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{ClusterError, Result};
use crate::ssh::Remote;

/// A job's state, as biomero-stage acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting or running (PENDING, RUNNING, CONFIGURING, COMPLETING, REQUEUED, SUSPENDED, …).
    Active,
    /// COMPLETED.
    Completed,
    /// FAILED, NODE_FAIL, BOOT_FAIL, OUT_OF_MEMORY, DEADLINE, PREEMPTED, TIMEOUT.
    Failed,
    /// CANCELLED.
    Cancelled,
    /// Slurm does not know the job (yet, or any more).
    Unknown,
}

/// What Slurm says about one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The job id.
    pub job_id: u64,
    /// Slurm's state word (`COMPLETED`, `TIMEOUT`, `CANCELLED by 1001`, …).
    pub slurm_state: String,
    /// `ExitCode` (`3:0`).
    pub exit_code: String,
    /// The mapped state.
    pub state: JobState,
    /// Seconds from submission to start, once it started (Slurm's `Submit`, `Start`).
    #[serde(default)]
    pub queued_secs: Option<u64>,
    /// Seconds from start to end, once it ended (`Start`, `End`).
    #[serde(default)]
    pub ran_secs: Option<u64>,
}

/// Seconds from Slurm time `from` to `to` (`2026-12-01T19:00:00`; `Unknown`, `None` or
/// an empty field when it has not happened).
fn between(from: Option<&str>, to: Option<&str>) -> Option<u64> {
    let t = |s: Option<&str>| {
        chrono::NaiveDateTime::parse_from_str(s?.trim(), "%Y-%m-%dT%H:%M:%S").ok()
    };
    let secs = (t(to)? - t(from)?).num_seconds();
    u64::try_from(secs).ok()
}

/// Maps a Slurm state word.
pub fn map_state(s: &str) -> JobState {
    let word = s
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .trim_end_matches('+');
    match word {
        "COMPLETED" => JobState::Completed,
        "CANCELLED" => JobState::Cancelled,
        "FAILED" | "NODE_FAIL" | "BOOT_FAIL" | "OUT_OF_MEMORY" | "DEADLINE" | "PREEMPTED"
        | "TIMEOUT" | "REVOKED" | "SPECIAL_EXIT" => JobState::Failed,
        "" => JobState::Unknown,
        _ => JobState::Active,
    }
}

/// Parses `sacct -P` lines `JobID|State|ExitCode|…`.
pub fn parse_sacct(out: &str) -> HashMap<u64, JobStatus> {
    let mut m = HashMap::new();
    for line in out.lines() {
        let f: Vec<&str> = line.trim().split('|').collect();
        if f.len() < 3 {
            continue;
        }
        let Some(id) = f[0].split(['_', '.']).next().and_then(|x| x.parse().ok()) else {
            continue;
        };
        // JobID|State|ExitCode|End|Submit|Start
        let (end, submit, start) = (f.get(3).copied(), f.get(4).copied(), f.get(5).copied());
        m.insert(
            id,
            JobStatus {
                job_id: id,
                slurm_state: f[1].to_owned(),
                exit_code: f[2].to_owned(),
                state: map_state(f[1]),
                queued_secs: between(submit, start),
                ran_secs: between(start, end),
            },
        );
    }
    m
}

/// Parses `scontrol show job` output.
pub fn parse_scontrol(id: u64, out: &str) -> Option<JobStatus> {
    let field = |k: &str| {
        out.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .map(ToOwned::to_owned)
    };
    let state = field("JobState=")?;
    let (submit, start, end) = (field("SubmitTime="), field("StartTime="), field("EndTime="));
    Some(JobStatus {
        job_id: id,
        exit_code: field("ExitCode=").unwrap_or_default(),
        state: map_state(&state),
        slurm_state: state,
        queued_secs: between(submit.as_deref(), start.as_deref()),
        ran_secs: between(start.as_deref(), end.as_deref()),
    })
}

fn unknown(id: u64) -> JobStatus {
    JobStatus {
        job_id: id,
        slurm_state: String::new(),
        exit_code: String::new(),
        state: JobState::Unknown,
        queued_secs: None,
        ran_secs: None,
    }
}

/// How to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusQuery {
    /// `sacct -S` (the configured sacct window).
    pub since: String,
    /// Use accounting (`sacct`); `false`: `squeue` + `scontrol` only.
    pub accounting: bool,
}

/// The states of `ids` in as few remote commands as possible.
pub async fn statuses(r: &Remote, ids: &[u64], q: &StatusQuery) -> Result<HashMap<u64, JobStatus>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let list = ids
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    if q.accounting {
        let args: Vec<String> = [
            "-n",
            "-P",
            "-X",
            "-o",
            "JobID,State,ExitCode,End,Submit,Start",
            "-S",
            &q.since,
            "-j",
            &list,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let o = r.output("sacct", &args).await?;
        if o.status.success() {
            let mut m = parse_sacct(&String::from_utf8_lossy(&o.stdout));
            // a job sacct does not show yet (just submitted) may be in the queue
            let missing: Vec<u64> = ids.iter().copied().filter(|i| !m.contains_key(i)).collect();
            if !missing.is_empty() {
                m.extend(without_accounting(r, &missing).await?);
            }
            return Ok(m);
        }
        let err = String::from_utf8_lossy(&o.stderr);
        if !err
            .to_ascii_lowercase()
            .contains("accounting storage is disabled")
        {
            return Err(ClusterError::Remote {
                host: r.host().to_owned(),
                command: format!("sacct -j {list}"),
                code: o.status.code().unwrap_or(-1),
                stderr: err.trim().to_owned(),
            });
        }
        tracing::info!("sacct says accounting is off; asking squeue and scontrol");
    }
    without_accounting(r, ids).await
}

async fn without_accounting(r: &Remote, ids: &[u64]) -> Result<HashMap<u64, JobStatus>> {
    let list = ids
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let mut m = HashMap::new();
    let o = r
        .output(
            "squeue",
            &[
                "-h".into(),
                "-j".into(),
                list,
                "-o".into(),
                "%i|%T|0:0".into(),
            ],
        )
        .await?;
    if o.status.success() {
        m.extend(parse_sacct(&String::from_utf8_lossy(&o.stdout)));
    }
    let rest: Vec<u64> = ids.iter().copied().filter(|i| !m.contains_key(i)).collect();
    for id in &rest {
        let o = r
            .output("scontrol", &["show".into(), "job".into(), id.to_string()])
            .await?;
        let s = if o.status.success() {
            parse_scontrol(*id, &String::from_utf8_lossy(&o.stdout)).unwrap_or_else(|| unknown(*id))
        } else {
            let err = String::from_utf8_lossy(&o.stderr);
            // only "Invalid job id" means Slurm forgot the job; anything else (controller down) is asked again
            if !err.to_ascii_lowercase().contains("invalid job id") {
                return Err(ClusterError::Remote {
                    host: r.host().to_owned(),
                    command: format!("scontrol show job {id}"),
                    code: o.status.code().unwrap_or(-1),
                    stderr: err.trim().to_owned(),
                });
            }
            unknown(*id)
        };
        m.insert(*id, s);
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_wait_and_run_time_come_from_submit_start_and_end() {
        let m = parse_sacct(
            "20|COMPLETED|0:0|2026-11-29T10:05:00|2026-11-29T10:00:00|2026-11-29T10:01:30\n21|PENDING|0:0|Unknown|2026-11-29T10:00:00|Unknown\n22|RUNNING|0:0|Unknown|2026-11-29T10:00:00|2026-11-29T10:00:07\n",
        );
        assert_eq!((m[&20].queued_secs, m[&20].ran_secs), (Some(90), Some(210)));
        assert_eq!((m[&21].queued_secs, m[&21].ran_secs), (None, None));
        assert_eq!((m[&22].queued_secs, m[&22].ran_secs), (Some(7), None));
        let s = parse_scontrol(
            23,
            "JobId=23 JobState=COMPLETED ExitCode=0:0 SubmitTime=2026-11-29T10:00:00 StartTime=2026-11-29T10:00:02 EndTime=2026-11-29T10:00:12",
        )
        .expect("parsed");
        assert_eq!((s.queued_secs, s.ran_secs), (Some(2), Some(10)));
    }

    #[test]
    fn states_from_sacct_and_scontrol() {
        let m = parse_sacct(
            "12|COMPLETED|0:0|2026-11-29T10:00:00\n13|FAILED|3:0|x\n14|CANCELLED by 1001|0:15|x\n15|RUNNING|0:0|Unknown\n16_2|PENDING|0:0|Unknown\n",
        );
        assert_eq!(m[&12].state, JobState::Completed);
        assert_eq!(
            (m[&13].state, m[&13].exit_code.as_str()),
            (JobState::Failed, "3:0")
        );
        assert_eq!(m[&14].state, JobState::Cancelled);
        assert_eq!(m[&15].state, JobState::Active);
        assert_eq!(m[&16].state, JobState::Active);
        assert_eq!(map_state("TIMEOUT"), JobState::Failed);
        assert_eq!(map_state("OUT_OF_MEMORY"), JobState::Failed);
        let s = parse_scontrol(7, "JobId=7 JobName=x\n   JobState=TIMEOUT Reason=TimeLimit Dependency=(null)\n   ExitCode=0:15").unwrap();
        assert_eq!(
            (s.state, s.slurm_state.as_str(), s.exit_code.as_str()),
            (JobState::Failed, "TIMEOUT", "0:15")
        );
    }
}
