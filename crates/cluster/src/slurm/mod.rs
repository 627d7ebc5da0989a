//! Slurm over SSH: submitting a job (once), asking for its state (`sacct`, or
//! `squeue` + `scontrol` where accounting is off), reading its log, and
//! cancelling it. [`watch::Watcher`] follows many jobs with one query per poll.

pub mod log;
pub mod status;
pub mod submit;
pub mod watch;

pub use status::{JobState, JobStatus};
pub use submit::{JobSpec, Submitted};
