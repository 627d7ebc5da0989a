//! The durable submission queue of biomero-stage.
//!
//! Three tables, the same on SQLite (the embedded default, one file, WAL) and
//! PostgreSQL (production: the BIOMERO database): `biomero_stage_submissions`
//! (each submission's request and its current state — a projection of the
//! log), `biomero_stage_events` (append-only: every step's outcome), and
//! `biomero_stage_leases` (which worker holds which submission, until when).
//!
//! Workers [`Store::claim`] a runnable submission under a lease, renew it
//! while they work, and record each step with [`Store::advance`], which checks
//! the lease token in the same transaction (fencing): a worker whose lease
//! expired cannot record anything, so two daemons never both complete a step.
//! [`Store::reap`] returns expired leases to the queue. Any program may insert
//! a submission row; on PostgreSQL a trigger sends `NOTIFY biomero_stage`.

mod error;
pub mod model;
mod postgres;
mod rows;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub use error::{Result, StoreError};
pub use model::{
    Claim, Event, ListFilter, NewSubmission, Outcome, Renewal, State, Submission, Transition,
};

/// The PostgreSQL notification channel.
pub const NOTIFY_CHANNEL: &str = "biomero_stage";

#[derive(Clone)]
enum Backend {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// The queue, on one of its two backends. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    url: String,
    wake: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("url", &redact(&self.url))
            .finish_non_exhaustive()
    }
}

/// The URL without its password.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl Store {
    /// Connects (creating a SQLite file if needed) and runs the migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite(sqlite::connect(url).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(postgres::connect(url).await?)
        } else {
            return Err(StoreError::Url(url.to_owned()));
        };
        Ok(Store {
            backend,
            url: url.to_owned(),
            wake: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Whether this is the PostgreSQL backend.
    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// The database URL without its password.
    pub fn describe(&self) -> String {
        redact(&self.url)
    }

    /// A round trip to the database.
    pub async fn ping(&self) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ()),
            Backend::Postgres(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ()),
        }
        .map_err(StoreError::from)
    }

    /// Enqueues a submission; a second submission with the same id returns the first (`false`).
    pub async fn insert(&self, new: &NewSubmission) -> Result<(Submission, bool)> {
        let r = match &self.backend {
            Backend::Sqlite(p) => sqlite::insert(p, new).await,
            Backend::Postgres(p) => postgres::insert(p, new).await,
        }?;
        if r.1 {
            self.wake.notify_waiters();
        }
        Ok(r)
    }

    /// A submission by id.
    pub async fn get(&self, id: &str) -> Result<Option<Submission>> {
        match &self.backend {
            Backend::Sqlite(p) => sqlite::get(p, id).await,
            Backend::Postgres(p) => postgres::get(p, id).await,
        }
    }

    /// Submissions, newest first.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<Submission>> {
        match &self.backend {
            Backend::Sqlite(p) => sqlite::list(p, filter).await,
            Backend::Postgres(p) => postgres::list(p, filter).await,
        }
    }

    /// A submission's history, oldest first.
    pub async fn events(&self, id: &str) -> Result<Vec<Event>> {
        match &self.backend {
            Backend::Sqlite(p) => sqlite::events(p, id).await,
            Backend::Postgres(p) => postgres::events(p, id).await,
        }
    }

    /// Claims one runnable submission for `owner` for `lease`.
    pub async fn claim(&self, owner: &str, lease: Duration) -> Result<Option<Claim>> {
        let token = uuid::Uuid::new_v4().to_string();
        match &self.backend {
            Backend::Sqlite(p) => sqlite::claim(p, owner, &token, lease).await,
            Backend::Postgres(p) => postgres::claim(p, owner, &token, lease).await,
        }
    }

    /// Extends a claim's lease: still held, held with a cancellation requested meanwhile, or lost.
    pub async fn renew(&self, claim: &Claim, lease: Duration) -> Result<Renewal> {
        let renewed = match &self.backend {
            Backend::Sqlite(p) => sqlite::renew(p, claim, lease).await,
            Backend::Postgres(p) => postgres::renew(p, claim, lease).await,
        };
        match renewed {
            Ok(false) => Ok(Renewal::Held),
            Ok(true) => Ok(Renewal::CancelRequested),
            Err(StoreError::LeaseLost(_)) => Ok(Renewal::Lost),
            Err(e) => Err(e),
        }
    }

    /// Records a step's outcome and updates the submission, if the claim still holds.
    pub async fn advance(&self, claim: &Claim, t: &Transition) -> Result<Submission> {
        match &self.backend {
            Backend::Sqlite(p) => sqlite::advance(p, claim, t).await,
            Backend::Postgres(p) => postgres::advance(p, claim, t).await,
        }
    }

    /// Records a step's outcome and gives the claim back, in one transaction.
    pub async fn advance_and_release(&self, claim: &Claim, t: &Transition) -> Result<Submission> {
        let s = match &self.backend {
            Backend::Sqlite(p) => sqlite::advance_and_release(p, claim, t).await,
            Backend::Postgres(p) => postgres::advance_and_release(p, claim, t).await,
        }?;
        self.wake.notify_waiters();
        Ok(s)
    }

    /// Gives a claim back (the submission becomes claimable again at once).
    pub async fn release(&self, claim: &Claim) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(p) => sqlite::release(p, claim).await,
            Backend::Postgres(p) => postgres::release(p, claim).await,
        }
    }

    /// Removes expired leases (recording a `lease_expired` event); returns how many.
    pub async fn reap(&self) -> Result<u64> {
        let n = match &self.backend {
            Backend::Sqlite(p) => sqlite::reap(p).await,
            Backend::Postgres(p) => postgres::reap(p).await,
        }?;
        if n > 0 {
            self.wake.notify_waiters();
        }
        Ok(n)
    }

    /// Asks for a submission to be cancelled (the worker that holds it, or the next to claim it, stops it).
    pub async fn request_cancel(&self, id: &str) -> Result<Submission> {
        let s = match &self.backend {
            Backend::Sqlite(p) => sqlite::request_cancel(p, id).await,
            Backend::Postgres(p) => postgres::request_cancel(p, id).await,
        }?;
        self.wake.notify_waiters();
        Ok(s)
    }

    /// Makes submissions that waited for a capability runnable again (after an upgrade or reload).
    pub async fn resume_waiting(&self) -> Result<u64> {
        let n = match &self.backend {
            Backend::Sqlite(p) => sqlite::resume_waiting(p).await,
            Backend::Postgres(p) => postgres::resume_waiting(p).await,
        }?;
        if n > 0 {
            self.wake.notify_waiters();
        }
        Ok(n)
    }

    /// Number of submissions in each state.
    pub async fn counts_by_state(&self) -> Result<Vec<(State, i64)>> {
        match &self.backend {
            Backend::Sqlite(p) => sqlite::counts(p).await,
            Backend::Postgres(p) => postgres::counts(p).await,
        }
    }

    /// Submissions that could be claimed now.
    pub async fn queue_depth(&self) -> Result<i64> {
        match &self.backend {
            Backend::Sqlite(p) => sqlite::depth(p).await,
            Backend::Postgres(p) => postgres::depth(p).await,
        }
    }

    /// Waits until something may be claimable: a notification (PostgreSQL
    /// `NOTIFY`, or a local insert/cancel) or `poll` elapsed, whichever is first.
    pub async fn wait_for_work(&self, listener: &mut Option<Listener>, poll: Duration) {
        let local = self.wake.notified();
        match listener {
            Some(Listener(l)) => {
                tokio::select! {
                    r = l.recv() => {
                        if let Err(e) = r {
                            tracing::warn!(error = %e, "queue notifications interrupted; polling until they resume");
                            tokio::time::sleep(poll).await;
                        }
                    }
                    () = local => {}
                    () = tokio::time::sleep(poll) => {}
                }
            }
            None => {
                tokio::select! {
                    () = local => {}
                    () = tokio::time::sleep(poll) => {}
                }
            }
        }
    }

    /// A listener for PostgreSQL notifications (`None` on SQLite).
    pub async fn listener(&self) -> Result<Option<Listener>> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(None),
            Backend::Postgres(p) => {
                let mut l = sqlx::postgres::PgListener::connect_with(p).await?;
                l.listen(NOTIFY_CHANNEL).await?;
                Ok(Some(Listener(l)))
            }
        }
    }
}

/// A PostgreSQL notification listener (reconnects by itself; notifications sent
/// while it is disconnected are lost, which is why workers also poll).
pub struct Listener(sqlx::postgres::PgListener);

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Listener")
    }
}

/// Merges a step's result into `data` (the submission's step results).
pub(crate) fn merged_data(data: &Value, t: &Transition) -> Value {
    let mut d = match data {
        Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    if t.outcome == Outcome::Succeeded {
        d.insert(t.step.clone(), t.detail.clone());
    }
    Value::Object(d)
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("postgres://biomero:secret@db:5432/x"),
            "postgres://biomero:***@db:5432/x"
        );
        assert_eq!(
            redact("sqlite:///var/lib/q.sqlite"),
            "sqlite:///var/lib/q.sqlite"
        );
    }
}
