//! The durable submission queue of biomero-stage.
//!
//! Three tables, the same on SQLite (the embedded default, one file, WAL) and
//! PostgreSQL (production: a database of its own beside BIOMERO's): `biomero_stage_submissions`
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

/// Runs `$body` once for whichever pool `$store` has, with `$pool` bound to it
/// and `$d` to its [`Dialect`](shared::Dialect): one text, type-checked against both backends.
macro_rules! on_either {
    ($store:expr, |$pool:ident, $d:ident| $body:expr) => {
        match &$store.backend {
            $crate::Backend::Sqlite($pool) => {
                #[allow(unused_variables)]
                let $d = $crate::shared::Dialect::SQLITE;
                $body
            }
            $crate::Backend::Postgres($pool) => {
                #[allow(unused_variables)]
                let $d = $crate::shared::Dialect::POSTGRES;
                $body
            }
        }
    };
}

mod error;
pub mod mirror;
pub mod model;
mod postgres;
pub mod retention;
mod rows;
mod shared;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub use error::{Result, StoreError};
pub use mirror::{Lag, Pending};
pub use model::{
    Claim, Event, ListFilter, NewSubmission, Outcome, Renewal, State, Submission, Transition,
};
pub use retention::Cut;

/// The PostgreSQL notification channel.
pub const NOTIFY_CHANNEL: &str = "biomero_stage";

/// What each backend writes in its own SQL, because there the SQL really
/// differs: claims, leases and the fencing of every step's record.
trait Leasing {
    /// Claims one runnable submission under a new lease `token`.
    async fn claim(&self, owner: &str, token: &str, lease: Duration) -> Result<Option<Claim>>;
    /// Extends the lease; `true` when a cancellation was requested meanwhile.
    async fn renew(&self, c: &Claim, lease: Duration) -> Result<bool>;
    /// Records a transition if the lease holds, and gives the lease back when `release`.
    async fn advance(&self, c: &Claim, t: &Transition, release: bool) -> Result<Submission>;
    /// Gives the lease back.
    async fn release(&self, c: &Claim) -> Result<()>;
    /// Removes expired leases, recording each; returns how many.
    async fn reap(&self) -> Result<u64>;
}

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

/// The URL without its password (in the user info or a query parameter).
pub fn redact(url: &str) -> String {
    stage_common::redact_url(url)
}

impl Store {
    /// Connects (creating a SQLite file if needed) and runs the migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite(sqlite::connect(url).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(postgres::connect(url).await?)
        } else {
            return Err(StoreError::Url(redact(url)));
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

    /// Claims one runnable submission for `owner` for `lease`.
    pub async fn claim(&self, owner: &str, lease: Duration) -> Result<Option<Claim>> {
        let token = uuid::Uuid::new_v4().to_string();
        on_either!(self, |p, _d| p.claim(owner, &token, lease).await)
    }

    /// Extends a claim's lease: still held, held with a cancellation requested meanwhile, or lost.
    pub async fn renew(&self, claim: &Claim, lease: Duration) -> Result<Renewal> {
        match on_either!(self, |p, _d| p.renew(claim, lease).await) {
            Ok(false) => Ok(Renewal::Held),
            Ok(true) => Ok(Renewal::CancelRequested),
            Err(StoreError::LeaseLost(_)) => Ok(Renewal::Lost),
            Err(e) => Err(e),
        }
    }

    /// Records a step's outcome and updates the submission, if the claim still holds.
    pub async fn advance(&self, claim: &Claim, t: &Transition) -> Result<Submission> {
        on_either!(self, |p, _d| p.advance(claim, t, false).await)
    }

    /// Records a step's outcome and gives the claim back, in one transaction.
    pub async fn advance_and_release(&self, claim: &Claim, t: &Transition) -> Result<Submission> {
        let s = on_either!(self, |p, _d| p.advance(claim, t, true).await)?;
        self.wake.notify_waiters();
        Ok(s)
    }

    /// Gives a claim back (the submission becomes claimable again at once).
    pub async fn release(&self, claim: &Claim) -> Result<()> {
        on_either!(self, |p, _d| p.release(claim).await)
    }

    /// Removes expired leases (recording a `lease_expired` event); returns how many.
    pub async fn reap(&self) -> Result<u64> {
        let n = on_either!(self, |p, _d| p.reap().await)?;
        if n > 0 {
            self.wake.notify_waiters();
        }
        Ok(n)
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
