//! BIOMERO's workflow tracking, written by biomero-stage.
//!
//! BIOMERO (2.8) records every workflow run in an `eventsourcing` 9.5 store on
//! SQLAlchemy (`workflowtracker_events`): a `WorkflowRun` aggregate with its
//! `Task`s, each event one row `(originator_id, originator_version, topic,
//! state)` with `state` in eventsourcing's JSON transcoding. Four followers
//! project the events into the tables OMERO.biomero's dashboards read:
//! `biomero_workflow_progress_view`, `biomero_task_execution`,
//! `biomero_job_view` and `biomero_job_progress_view`.
//!
//! This crate writes that format directly ([`event`]), runs the same
//! projections ([`project`]) and appends both in one transaction under the
//! store's own table lock and optimistic concurrency ([`writer`]), so a
//! dashboard shows a step as it happens and BIOMERO's own code reads, rebuilds
//! and follows the runs as if BIOMERO had made them. BIOMERO 2.9's detached
//! runs are found and claimed through [`launcher`].

pub mod event;
pub mod launcher;
pub mod project;
pub mod url;
pub mod writer;

pub use event::{Kind, StoredEvent, TrackedEvent};
pub use launcher::{Claim, Holder, Launcher, LauncherRun};
pub use project::{Projections, RowWrite, Rules};
pub use url::{TrackerUrl, UrlError};
pub use writer::{Appended, Tracker, TrackerError};
