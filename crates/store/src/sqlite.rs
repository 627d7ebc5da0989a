//! The queue on SQLite: one file, WAL, every write in an immediate
//! transaction (SQLite has one writer at a time, so `BEGIN IMMEDIATE` makes
//! claim-then-lease atomic without row locks). Times are Unix milliseconds.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::Leasing;
use crate::error::{Result, StoreError};
use crate::model::{Claim, Outcome, Submission, Transition};
use crate::rows::{self, select_submissions};

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn lease_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

pub(crate) async fn connect(url: &str) -> Result<SqlitePool> {
    let opts = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    if let Some(parent) = opts
        .get_filename()
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
    }
    // Two processes opening a new file at once (the daemon starting while `submit` runs)
    // would race to create the schema (sqlx checks what is applied outside the migration's
    // transaction): an exclusive lock on `<file>.migrate-lock` makes them take turns, and a
    // SQLITE_BUSY on a stale snapshot is tried again.
    let lock_path = {
        let mut p = opts.get_filename().as_os_str().to_owned();
        p.push(".migrate-lock");
        std::path::PathBuf::from(p)
    };
    let lock = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        f.lock()?;
        Ok(f)
    })
    .await
    .map_err(|e| StoreError::Database(sqlx::Error::Io(std::io::Error::other(e))))?
    .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
    let mut attempt = 0;
    loop {
        let r = async {
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(opts.clone())
                .await?;
            sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
            Ok::<_, StoreError>(pool)
        }
        .await;
        match r {
            Err(e) if attempt < 20 && is_locked(&e) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            other => {
                drop(lock);
                return other;
            }
        }
    }
}

/// Whether `e` is SQLite's "database is locked" (SQLITE_BUSY).
fn is_locked(e: &StoreError) -> bool {
    e.to_string().contains("database is locked")
}

impl Leasing for SqlitePool {
    async fn claim(&self, owner: &str, token: &str, lease: Duration) -> Result<Option<Claim>> {
        // SQLite has one writer at a time (BEGIN IMMEDIATE), so select-then-lease
        // is atomic. As on PostgreSQL, a claimed submission's claimable_at moves to
        // its lease expiry, so the ordered index scan skips held rows and an expired
        // lease makes its submission claimable by itself.
        let mut tx = self.begin_with("BEGIN IMMEDIATE").await?;
        let now = now_ms();
        let id: Option<String> = sqlx::query_scalar(
            "SELECT s.id FROM biomero_stage_submissions s WHERE s.done = 0 AND s.waiting_for IS NULL AND s.claimable_at <= ? AND NOT EXISTS (SELECT 1 FROM biomero_stage_leases l WHERE l.submission_id = s.id AND l.expires_at > ?) ORDER BY s.claimable_at, s.created_at LIMIT 1",
        )
        .bind(now)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else {
            tx.commit().await?;
            return Ok(None);
        };
        let until = now + lease_ms(lease);
        sqlx::query(
            "INSERT INTO biomero_stage_leases (submission_id, owner, token, acquired_at, expires_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (submission_id) DO UPDATE SET owner = excluded.owner, token = excluded.token, acquired_at = excluded.acquired_at, expires_at = excluded.expires_at",
        )
        .bind(&id)
        .bind(owner)
        .bind(token)
        .bind(now)
        .bind(until)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE biomero_stage_submissions SET claimable_at = ? WHERE id = ?")
            .bind(until)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(select_submissions!("WHERE id = ?"))
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?;
        let submission = rows::submission(&row)?;
        tx.commit().await?;
        Ok(Some(Claim {
            submission,
            token: token.to_owned(),
            owner: owner.to_owned(),
        }))
    }

    async fn renew(&self, c: &Claim, lease: Duration) -> Result<bool> {
        let mut tx = self.begin_with("BEGIN IMMEDIATE").await?;
        let now = now_ms();
        let until = now + lease_ms(lease);
        let n = sqlx::query(
            "UPDATE biomero_stage_leases SET expires_at = ? WHERE submission_id = ? AND token = ? AND expires_at > ?",
        )
        .bind(until)
        .bind(&c.submission.id)
        .bind(&c.token)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::LeaseLost(c.submission.id.clone()));
        }
        let cancel: i64 = sqlx::query_scalar(
            "UPDATE biomero_stage_submissions SET claimable_at = MAX(next_attempt_at, ?) WHERE id = ? RETURNING cancel_requested",
        )
        .bind(until)
        .bind(&c.submission.id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(cancel != 0)
    }

    async fn advance(&self, c: &Claim, t: &Transition, release: bool) -> Result<Submission> {
        let mut tx = self.begin_with("BEGIN IMMEDIATE").await?;
        let now = now_ms();
        let held_until: Option<i64> = sqlx::query_scalar(
            "SELECT expires_at FROM biomero_stage_leases WHERE submission_id = ? AND token = ? AND expires_at > ?",
        )
        .bind(&c.submission.id)
        .bind(&c.token)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(held_until) = held_until else {
            return Err(StoreError::LeaseLost(c.submission.id.clone()));
        };
        let row = sqlx::query(select_submissions!("WHERE id = ?"))
            .bind(&c.submission.id)
            .fetch_one(&mut *tx)
            .await?;
        let current = rows::submission(&row)?;
        let state = t.state.unwrap_or(current.state);
        let data = crate::merged_data(&current.data, t);
        let attempts = match t.outcome {
            Outcome::Retrying => current.attempts + 1,
            Outcome::Succeeded => 0,
            _ => current.attempts,
        };
        // while the claim is kept, the row stays out of the claimable range until the lease expires
        let next = t.retry_at.map_or(now, ms);
        let claimable = if release { next } else { next.max(held_until) };
        sqlx::query(
            "UPDATE biomero_stage_submissions SET state = ?, done = ?, waiting_for = ?, error = COALESCE(?, CASE WHEN ? THEN NULL ELSE error END), attempts = ?, next_attempt_at = ?, claimable_at = ?, data = ?, updated_at = ? WHERE id = ?",
        )
        .bind(state.as_str())
        .bind(t.done)
        .bind(&t.waiting_for)
        .bind(&t.error)
        .bind(t.outcome == Outcome::Succeeded)
        .bind(i64::from(attempts))
        .bind(next)
        .bind(claimable)
        .bind(data.to_string())
        .bind(now)
        .bind(&c.submission.id)
        .execute(&mut *tx)
        .await?;
        let detail = t.detail.to_string();
        sqlx::query(
            "INSERT INTO biomero_stage_events (submission_id, seq, step, outcome, state, detail, at)
             SELECT ?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM biomero_stage_events WHERE submission_id = ?1), ?2, ?3, ?4, ?5, ?6
             WHERE NOT (?3 = 'progress' AND EXISTS (
                 SELECT 1 FROM (SELECT step, outcome, detail FROM biomero_stage_events
                                WHERE submission_id = ?1 ORDER BY seq DESC LIMIT 1) AS last
                 WHERE last.step = ?2 AND last.outcome = 'progress' AND last.detail = ?5))",
        )
        .bind(&c.submission.id)
        .bind(&t.step)
        .bind(t.outcome.as_str())
        .bind(state.as_str())
        .bind(&detail)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(select_submissions!("WHERE id = ?"))
            .bind(&c.submission.id)
            .fetch_one(&mut *tx)
            .await?;
        let s = rows::submission(&row)?;
        if release {
            sqlx::query("DELETE FROM biomero_stage_leases WHERE submission_id = ? AND token = ?")
                .bind(&c.submission.id)
                .bind(&c.token)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(s)
    }

    async fn release(&self, c: &Claim) -> Result<()> {
        // the row becomes claimable at its next_attempt_at (now, unless a retry backoff is pending)
        let mut tx = self.begin_with("BEGIN IMMEDIATE").await?;
        let released =
            sqlx::query("DELETE FROM biomero_stage_leases WHERE submission_id = ? AND token = ?")
                .bind(&c.submission.id)
                .bind(&c.token)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if released > 0 {
            sqlx::query(
                "UPDATE biomero_stage_submissions SET claimable_at = next_attempt_at WHERE id = ?",
            )
            .bind(&c.submission.id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn reap(&self) -> Result<u64> {
        let mut tx = self.begin_with("BEGIN IMMEDIATE").await?;
        let now = now_ms();
        let expired: Vec<(String, String)> = sqlx::query_as(
            "SELECT l.submission_id, s.state FROM biomero_stage_leases l JOIN biomero_stage_submissions s ON s.id = l.submission_id WHERE l.expires_at <= ?",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for (id, state) in &expired {
            sqlx::query(
                "DELETE FROM biomero_stage_leases WHERE submission_id = ? AND expires_at <= ?",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO biomero_stage_events (submission_id, seq, step, outcome, state, detail, at) VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM biomero_stage_events WHERE submission_id = ?), 'lease', 'lease_expired', ?, '{}', ?)",
            )
            .bind(id)
            .bind(id)
            .bind(state)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(expired.len() as u64)
    }
}
