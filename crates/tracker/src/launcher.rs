//! BIOMERO 2.9's detached runs: the launcher tasks its run scripts queue, and
//! claiming one exactly once.
//!
//! In detached mode (`biomero/detached.py`) `SLURM_Run_Workflow.py` starts a
//! `WorkflowRun`, records a *launcher task* named after itself whose params are
//! every script input plus `workflows` and the marker
//! `_biomero_detached_launcher`, and returns. A supervisor claims the launcher by
//! appending `StatusUpdated("CLAIMED")` at the task's next version and runs the
//! workflow. Two claimants serialise on BIOMERO's own table lock and the store's
//! unique `(originator_id, originator_version)`: whoever comes second finds the
//! launcher claimed (or hits the unique index) and leaves it alone.
//!
//! biomero-stage's claim is that status followed by a `ResultAdded` naming the
//! claimant (a Fabric-result-shaped dict, which no follower projects), in one
//! transaction, so a daemon that stopped between its claim and queueing the run
//! recognises its own claim when it comes back.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::event::{Kind, StoredEvent, TASK_TOPIC, TrackedEvent};
use crate::project::{CLAIMED, LAUNCHER_MARKER, is_launcher};
use crate::writer::{Tracker, TrackerError};

/// A launcher task as queued by BIOMERO's run script.
#[derive(Debug, Clone, PartialEq)]
pub struct Launcher {
    /// The notification id of its `TaskCreated`.
    pub notification: i64,
    /// The launcher task.
    pub task: Uuid,
    /// The run it belongs to.
    pub workflow: Uuid,
    /// `SLURM_Run_Workflow.py` or `SLURM_Run_Workflow_Batched.py`.
    pub script: String,
    /// The script's version (the marker's value).
    pub script_version: String,
    /// Every script input, with `workflows` and the marker.
    pub params: Value,
}

/// Who has a launcher, as its events say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// Nobody yet.
    Nobody,
    /// A claimant that named itself this way (biomero-stage's claims).
    Named(String),
    /// A claimant that did not name itself (BIOMERO's own supervisor).
    Unnamed,
}

/// A launcher's run, as the store holds it now.
#[derive(Debug, Clone, PartialEq)]
pub struct LauncherRun {
    /// OMERO user id of `WorkflowInitiated`.
    pub user: i64,
    /// OMERO group id of `WorkflowInitiated`.
    pub group: i64,
    /// The run's name.
    pub name: String,
    /// Who claimed the launcher.
    pub holder: Holder,
    /// The run completed or failed already.
    pub ended: bool,
}

/// What a claim came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This claimant has it now.
    Won,
    /// This claimant had claimed it before.
    Ours,
    /// Another claimant has it.
    Taken(Holder),
}

/// The `ResultAdded` by which `claimant` names its claim.
pub fn claim_result(claimant: &str) -> Value {
    json!({
        "command": "claim",
        "env": {},
        "stdout": format!("claimed by {claimant}"),
        "stderr": "",
    })
}

fn holder_of(events: &[TrackedEvent]) -> Holder {
    let Some(at) = events
        .iter()
        .position(|e| matches!(&e.kind, Kind::StatusUpdated { status } if status == CLAIMED))
    else {
        return Holder::Nobody;
    };
    match events.get(at + 1).map(|e| &e.kind) {
        Some(Kind::ResultAdded { result }) if result["command"] == "claim" => result["stdout"]
            .as_str()
            .and_then(|s| s.strip_prefix("claimed by "))
            .map_or(Holder::Unnamed, |n| Holder::Named(n.to_owned())),
        _ => Holder::Unnamed,
    }
}

fn decode_all(stored: &[StoredEvent]) -> Vec<TrackedEvent> {
    stored
        .iter()
        .filter_map(|e| TrackedEvent::decode(e).ok())
        .collect()
}

impl Tracker {
    /// The launcher tasks created after notification `after`, at most `limit`, in order.
    pub async fn launchers_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Launcher>, TrackerError> {
        let rows = sqlx::query(
            "SELECT id, originator_id, originator_version, topic, state FROM workflowtracker_events
             WHERE id > $1 AND topic = $2 AND position($3::bytea IN state) > 0 ORDER BY id LIMIT $4",
        )
        .bind(after)
        .bind(format!("{TASK_TOPIC}.TaskCreated"))
        .bind(LAUNCHER_MARKER.as_bytes())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.error(&e))?;
        let mut out = Vec::new();
        for r in &rows {
            let stored = crate::writer::stored(r).map_err(|e| self.error(&e))?;
            let Ok(e) = TrackedEvent::decode(&stored) else {
                continue;
            };
            if let Kind::TaskCreated {
                workflow_id,
                task_name,
                params,
                ..
            } = e.kind
                && is_launcher(&task_name, &params)
            {
                out.push(Launcher {
                    notification: stored.id,
                    task: e.originator,
                    workflow: workflow_id,
                    script: task_name,
                    script_version: match &params[LAUNCHER_MARKER] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    },
                    params,
                });
            }
        }
        Ok(out)
    }

    /// The launcher's run as the store holds it; `None` when the run is not there.
    pub async fn launcher_run(&self, l: &Launcher) -> Result<Option<LauncherRun>, TrackerError> {
        let stored = self.read(&[l.task, l.workflow]).await?;
        let events = decode_all(&stored);
        let task: Vec<TrackedEvent> = events
            .iter()
            .filter(|e| e.originator == l.task)
            .cloned()
            .collect();
        let mut run = None;
        let mut ended = false;
        for e in events.iter().filter(|e| e.originator == l.workflow) {
            match &e.kind {
                Kind::WorkflowInitiated {
                    name, user, group, ..
                } => run = Some((name.clone(), *user, *group)),
                Kind::WorkflowCompleted | Kind::WorkflowFailed { .. } => ended = true,
                _ => {}
            }
        }
        Ok(run.map(|(name, user, group)| LauncherRun {
            user,
            group,
            name,
            holder: holder_of(&task),
            ended,
        }))
    }

    /// Claims launcher `l` for `claimant`, exactly once across every claimant.
    pub async fn claim(
        &self,
        l: &Launcher,
        claimant: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Claim, TrackerError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.error(&e))?;
        self.lock(&mut tx).await?;
        let task = decode_all(&self.read_in(&mut tx, &[l.task]).await?);
        match holder_of(&task) {
            Holder::Nobody => {}
            Holder::Named(n) if n == claimant => {
                let _ = tx.rollback().await;
                return Ok(Claim::Ours);
            }
            other => {
                let _ = tx.rollback().await;
                return Ok(Claim::Taken(other));
            }
        }
        let events = [
            TrackedEvent {
                originator: l.task,
                version: 0,
                at,
                kind: Kind::StatusUpdated {
                    status: CLAIMED.to_owned(),
                },
            },
            TrackedEvent {
                originator: l.task,
                version: 0,
                at,
                kind: Kind::ResultAdded {
                    result: claim_result(claimant),
                },
            },
        ];
        match self
            .append_in(&mut tx, &events, &[l.task, l.workflow])
            .await
        {
            Ok(_) => {
                tx.commit().await.map_err(|e| self.error(&e))?;
                Ok(Claim::Won)
            }
            Err(TrackerError::Raced { .. }) => {
                let _ = tx.rollback().await;
                Ok(Claim::Taken(Holder::Unnamed))
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn ev(kind: Kind) -> TrackedEvent {
        TrackedEvent {
            originator: Uuid::nil(),
            version: 0,
            at: Utc::now(),
            kind,
        }
    }

    #[test]
    fn the_holder_is_read_from_the_claim_and_the_result_after_it() {
        let created = ev(Kind::TaskCreated {
            workflow_id: Uuid::nil(),
            task_name: "SLURM_Run_Workflow.py".into(),
            task_version: "2.9".into(),
            input_data: json!([1]),
            params: json!({LAUNCHER_MARKER: "2.9"}),
        });
        let claimed = ev(Kind::StatusUpdated {
            status: CLAIMED.into(),
        });
        assert_eq!(holder_of(std::slice::from_ref(&created)), Holder::Nobody);
        assert_eq!(
            holder_of(&[created.clone(), claimed.clone()]),
            Holder::Unnamed
        );
        let named = ev(Kind::ResultAdded {
            result: claim_result("biomero-stage q1"),
        });
        assert_eq!(
            holder_of(&[created.clone(), claimed, named]),
            Holder::Named("biomero-stage q1".into())
        );
        // a result that is not a claim names nobody
        let other = ev(Kind::ResultAdded {
            result: json!({"command": "sbatch", "stdout": "claimed by x"}),
        });
        let claimed = ev(Kind::StatusUpdated {
            status: CLAIMED.into(),
        });
        assert_eq!(holder_of(&[created, claimed, other]), Holder::Unnamed);
    }
}
