//! The queries both backends run as one text: reads, intake, cancellation
//! requests, resumption and counts. Each is written once against a
//! [`Dialect`], whose few words differ (the clock, `GREATEST`, how a
//! transaction takes its write lock), and runs on whichever pool the store
//! has. Placeholders are `$N` on both: sqlx binds SQLite's `$N` parameters by
//! their number, as PostgreSQL does.
//!
//! Claims, leases, fencing and notifications stay in `postgres.rs` and
//! `sqlite.rs`: there the SQL really differs.

use crate::Store;
use crate::error::{Result, StoreError};
use crate::model::{Event, ListFilter, NewSubmission, Outcome, State, Submission};
use crate::rows::{self, select_events, select_submissions};

/// The words of SQL that differ between the backends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dialect {
    /// The database's current time, in the type the time columns hold.
    now: &'static str,
    /// The larger of two values (SQLite's scalar `MAX`).
    greatest: &'static str,
    /// The statement that opens a write transaction.
    pub(crate) begin: &'static str,
    /// What a `SELECT` appends to lock the rows it reads for the transaction.
    lock_rows: &'static str,
    /// "Not finished", as the claim index's predicate spells it (so the planner can use it).
    open: &'static str,
    /// The time `$1` seconds (a bound integer) before now, in the type the time columns hold.
    ago: &'static str,
}

impl Dialect {
    /// PostgreSQL: `timestamptz` columns, row locks.
    pub(crate) const POSTGRES: Dialect = Dialect {
        now: "now()",
        greatest: "GREATEST",
        begin: "BEGIN",
        lock_rows: " FOR UPDATE",
        open: "NOT done",
        ago: "(now() - make_interval(secs => CAST($1 AS double precision)))",
    };

    /// SQLite: Unix-millisecond columns, one writer at a time (`BEGIN IMMEDIATE`).
    pub(crate) const SQLITE: Dialect = Dialect {
        now: "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
        greatest: "MAX",
        begin: "BEGIN IMMEDIATE",
        lock_rows: "",
        open: "done = 0",
        ago: "(CAST(unixepoch('subsec') * 1000 AS INTEGER) - $1 * 1000)",
    };

    /// `template` with `{now}`, `{greatest}`, `{lock_rows}`, `{open}` and `{ago}` in this dialect.
    /// Safe as SQL: the template is a literal and every word comes from the constants above.
    pub(crate) fn sql(self, template: &'static str) -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(
            template
                .replace("{now}", self.now)
                .replace("{greatest}", self.greatest)
                .replace("{lock_rows}", self.lock_rows)
                .replace("{open}", self.open)
                .replace("{ago}", self.ago),
        )
    }
}

impl Store {
    /// Closes the store's connections and waits until they are closed.
    pub async fn close(&self) {
        on_either!(self, |p, _d| p.close().await);
    }

    /// A round trip to the database.
    pub async fn ping(&self) -> Result<()> {
        on_either!(self, |p, _d| {
            sqlx::query("SELECT 1").execute(p).await?;
        });
        Ok(())
    }

    /// This queue's identity: a UUID made when the queue was first opened, kept in the
    /// database. A queue that was lost and recreated gets a new one.
    pub async fn identity(&self) -> Result<String> {
        let fresh = uuid::Uuid::new_v4().to_string();
        on_either!(self, |p, _d| {
            sqlx::query(
                "INSERT INTO biomero_stage_meta (key, value) VALUES ('queue_id', $1) ON CONFLICT (key) DO NOTHING",
            )
            .bind(&fresh)
            .execute(p)
            .await?;
            Ok(
                sqlx::query_scalar("SELECT value FROM biomero_stage_meta WHERE key = 'queue_id'")
                    .fetch_one(p)
                    .await?,
            )
        })
    }

    /// Claims `key` once for every daemon on this queue: true for the one caller whose
    /// claim was recorded, false for every caller after it (a once-per-run action, such as
    /// the run's mail, taken by whichever daemon gets here first). `by` says who claimed it.
    pub async fn claim_once(&self, key: &str, by: &str) -> Result<bool> {
        let key = format!("claim:{key}");
        on_either!(self, |p, _d| {
            let done = sqlx::query(
                "INSERT INTO biomero_stage_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            )
            .bind(&key)
            .bind(by)
            .execute(p)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// A submission by id.
    pub async fn get(&self, id: &str) -> Result<Option<Submission>> {
        on_either!(self, |p, _d| {
            let row = sqlx::query(select_submissions!("WHERE id = $1"))
                .bind(id)
                .fetch_optional(p)
                .await?;
            row.as_ref().map(rows::submission).transpose()
        })
    }

    /// Submissions, newest first.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<Submission>> {
        let limit = rows::list_limit(filter);
        let state = filter.state.map(State::as_str);
        // a run's submissions are `<run>-<n>`: the ids strictly between `<run>-` and `<run>.`
        // ('.' follows '-'), a range of the primary key on both backends
        let from = filter.run.as_ref().map(|r| format!("{r}-"));
        let to = filter.run.as_ref().map(|r| format!("{r}."));
        on_either!(self, |p, _d| {
            let rows = sqlx::query(select_submissions!(
                "WHERE ($1 IS NULL OR state = $1) AND ($3 IS NULL OR (id > $3 AND id < $4))
                 AND ($5 IS NULL OR created_at < (SELECT c.created_at FROM biomero_stage_submissions c WHERE c.id = $5)
                      OR (created_at = (SELECT c.created_at FROM biomero_stage_submissions c WHERE c.id = $5) AND id > $5))
                 ORDER BY created_at DESC, id LIMIT $2"
            ))
            .bind(state)
            .bind(limit)
            .bind(from.clone())
            .bind(to.clone())
            .bind(filter.before.clone())
            .fetch_all(p)
            .await?;
            rows.iter().map(rows::submission).collect()
        })
    }

    /// A submission's history, oldest first.
    pub async fn events(&self, id: &str) -> Result<Vec<Event>> {
        on_either!(self, |p, _d| {
            let rows = sqlx::query(select_events!("$1"))
                .bind(id)
                .fetch_all(p)
                .await?;
            rows.iter().map(|r| rows::event(id, r)).collect()
        })
    }

    /// Enqueues a submission; a second submission with the same id returns the first (`false`).
    pub async fn insert(&self, new: &NewSubmission) -> Result<(Submission, bool)> {
        let mut intake = serde_json::json!({ "workflow": new.workflow });
        if !new.notices.is_empty() {
            intake["notices"] = serde_json::json!(new.notices);
        }
        let inserted = on_either!(self, |p, d| {
            let mut tx = p.begin_with(d.begin).await?;
            let inserted = sqlx::query(d.sql(
                "INSERT INTO biomero_stage_submissions (id, workflow, request, next_attempt_at, claimable_at, created_at, updated_at)
                 VALUES ($1, $2, $3, {now}, {now}, {now}, {now}) ON CONFLICT (id) DO NOTHING",
            ))
            .bind(&new.id)
            .bind(&new.workflow)
            .bind(&new.request)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if inserted {
                sqlx::query(d.sql(
                    "INSERT INTO biomero_stage_events (submission_id, seq, step, outcome, state, detail, at)
                     VALUES ($1, 1, 'intake', 'accepted', 'received', $2, {now})",
                ))
                .bind(&new.id)
                .bind(&intake)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            inserted
        });
        let s = self
            .get(&new.id)
            .await?
            .ok_or_else(|| StoreError::NotFound(new.id.clone()))?;
        if inserted {
            self.wake.notify_waiters();
        }
        Ok((s, inserted))
    }

    /// Asks for a submission to be cancelled (the worker that holds it, or the next to claim it, stops it).
    pub async fn request_cancel(&self, id: &str) -> Result<Submission> {
        on_either!(self, |p, d| {
            let mut tx = p.begin_with(d.begin).await?;
            let row =
                sqlx::query(d.sql(concat!(select_submissions!("WHERE id = $1"), "{lock_rows}")))
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(row) = row else {
                return Err(StoreError::NotFound(id.to_owned()));
            };
            let s = rows::submission(&row)?;
            if s.done {
                return Err(StoreError::AlreadyFinished {
                    id: id.to_owned(),
                    state: s.state.to_string(),
                });
            }
            if !s.cancel_requested {
                // a held submission stays with its holder, who sees the request when it renews
                sqlx::query(d.sql(
                    "UPDATE biomero_stage_submissions SET cancel_requested = TRUE, waiting_for = NULL,
                         next_attempt_at = {now},
                         claimable_at = {greatest}({now}, COALESCE((SELECT expires_at FROM biomero_stage_leases WHERE submission_id = $1), {now})),
                         updated_at = {now}
                     WHERE id = $1",
                ))
                .bind(id)
                .execute(&mut *tx)
                .await?;
                sqlx::query(d.sql(
                    "INSERT INTO biomero_stage_events (submission_id, seq, step, outcome, state, detail, at)
                     VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM biomero_stage_events WHERE submission_id = $1), 'cancel', 'cancel_requested', $2, '{}', {now})",
                ))
                .bind(id)
                .bind(s.state.as_str())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        self.wake.notify_waiters();
        self.get(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_owned()))
    }

    /// Adds an event to a submission's history that changes nothing else (a notification
    /// sent or not, and why). Meant for finished submissions, which nothing else writes to.
    pub async fn note(&self, id: &str, step: &str, detail: &serde_json::Value) -> Result<()> {
        self.side_event(id, step, Outcome::Noted, detail).await
    }

    /// Adds a `progress` event of `step` to an open submission's history (bytes and files of a
    /// long staging or transfer), changing nothing else; the worker holding it writes these.
    pub async fn progress(&self, id: &str, step: &str, detail: &serde_json::Value) -> Result<()> {
        self.side_event(id, step, Outcome::Progress, detail).await
    }

    /// An event that changes nothing else; a progress event only while the submission is open.
    async fn side_event(
        &self,
        id: &str,
        step: &str,
        outcome: Outcome,
        detail: &serde_json::Value,
    ) -> Result<()> {
        on_either!(self, |p, d| {
            sqlx::query(d.sql(
                "INSERT INTO biomero_stage_events (submission_id, seq, step, outcome, state, detail, at)
                 SELECT id, (SELECT COALESCE(MAX(seq), 0) + 1 FROM biomero_stage_events WHERE submission_id = $1), $2, $4, state, $3, {now}
                 FROM biomero_stage_submissions WHERE id = $1 AND ($4 <> 'progress' OR {open})",
            ))
            .bind(id)
            .bind(step)
            .bind(detail)
            .bind(outcome.as_str())
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// Makes submissions that waited for a capability runnable again (after an upgrade or reload).
    pub async fn resume_waiting(&self) -> Result<u64> {
        let n = on_either!(self, |p, d| {
            sqlx::query(d.sql(
                "UPDATE biomero_stage_submissions SET waiting_for = NULL, next_attempt_at = {now}, claimable_at = {now}
                 WHERE waiting_for IS NOT NULL AND {open}",
            ))
            .execute(p)
            .await?
            .rows_affected()
        });
        if n > 0 {
            self.wake.notify_waiters();
        }
        Ok(n)
    }

    /// Number of submissions in each state.
    pub async fn counts_by_state(&self) -> Result<Vec<(State, i64)>> {
        let rows: Vec<(String, i64)> = on_either!(self, |p, _d| {
            sqlx::query_as("SELECT state, COUNT(*) FROM biomero_stage_submissions GROUP BY state")
                .fetch_all(p)
                .await?
        });
        Ok(rows::state_counts(rows))
    }

    /// Submissions that could be claimed now.
    pub async fn queue_depth(&self) -> Result<i64> {
        Ok(on_either!(self, |p, d| {
            sqlx::query_scalar(d.sql(
                "SELECT COUNT(*) FROM biomero_stage_submissions WHERE {open} AND waiting_for IS NULL AND claimable_at <= {now}",
            ))
            .fetch_one(p)
            .await?
        }))
    }
}
