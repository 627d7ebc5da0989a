//! The queue on SQLite: one file, WAL, every write in an immediate
//! transaction (SQLite has one writer at a time, so `BEGIN IMMEDIATE` makes
//! claim-then-lease atomic without row locks). Times are Unix milliseconds.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};

use crate::error::{Result, StoreError};
use crate::model::{
    Claim, Event, ListFilter, NewSubmission, Outcome, State, Submission, Transition,
};

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
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

fn row_to_submission(r: &SqliteRow) -> Result<Submission> {
    let id: String = r.try_get("id")?;
    let corrupt = |what: &'static str, message: String| StoreError::Corrupt {
        id: id.clone(),
        what,
        message,
    };
    let request: String = r.try_get("request")?;
    let data: String = r.try_get("data")?;
    let state: String = r.try_get("state")?;
    Ok(Submission {
        workflow: r.try_get("workflow")?,
        request: serde_json::from_str(&request).map_err(|e| corrupt("request", e.to_string()))?,
        state: State::from_str(&state).map_err(|e| corrupt("state", e))?,
        done: r.try_get::<i64, _>("done")? != 0,
        waiting_for: r.try_get("waiting_for")?,
        error: r.try_get("error")?,
        attempts: r
            .try_get::<i64, _>("attempts")
            .map(|a| i32::try_from(a).unwrap_or(i32::MAX))?,
        next_attempt_at: time(r.try_get("next_attempt_at")?),
        cancel_requested: r.try_get::<i64, _>("cancel_requested")? != 0,
        data: serde_json::from_str(&data).map_err(|e| corrupt("data", e.to_string()))?,
        created_at: time(r.try_get("created_at")?),
        updated_at: time(r.try_get("updated_at")?),
        id: id.clone(),
    })
}

/// `SELECT <all submission columns> FROM biomero_stage_submissions <tail>` as a `&'static str`.
macro_rules! select_submissions {
    ($tail:literal) => {
        concat!(
            "SELECT id, workflow, request, state, done, waiting_for, error, attempts, next_attempt_at, cancel_requested, data, created_at, updated_at FROM biomero_stage_submissions ",
            $tail
        )
    };
}

pub(crate) async fn get(p: &SqlitePool, id: &str) -> Result<Option<Submission>> {
    let r = sqlx::query(select_submissions!("WHERE id = ?"))
        .bind(id)
        .fetch_optional(p)
        .await?;
    r.as_ref().map(row_to_submission).transpose()
}

pub(crate) async fn insert(p: &SqlitePool, new: &NewSubmission) -> Result<(Submission, bool)> {
    let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
    let now = now_ms();
    let inserted = sqlx::query(
        "INSERT INTO biomero_stage_submissions (id, workflow, request, state, next_attempt_at, claimable_at, created_at, updated_at) VALUES (?, ?, ?, 'received', ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&new.id)
    .bind(&new.workflow)
    .bind(new.request.to_string())
    .bind(now)
    .bind(now)
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        sqlx::query(
            "INSERT INTO biomero_stage_events (submission_id, seq, step, outcome, state, detail, at) VALUES (?, 1, 'intake', 'accepted', 'received', ?, ?)",
        )
        .bind(&new.id)
        .bind(serde_json::json!({ "workflow": new.workflow }).to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    let s = get(p, &new.id)
        .await?
        .ok_or_else(|| StoreError::NotFound(new.id.clone()))?;
    Ok((s, inserted))
}

pub(crate) async fn list(p: &SqlitePool, f: &ListFilter) -> Result<Vec<Submission>> {
    let limit = if f.limit > 0 { f.limit } else { 100 };
    let rows = match f.state {
        Some(st) => {
            sqlx::query(select_submissions!(
                "WHERE state = ? ORDER BY created_at DESC, id LIMIT ?"
            ))
            .bind(st.as_str())
            .bind(limit)
            .fetch_all(p)
            .await?
        }
        None => {
            sqlx::query(select_submissions!("ORDER BY created_at DESC, id LIMIT ?"))
                .bind(limit)
                .fetch_all(p)
                .await?
        }
    };
    rows.iter().map(row_to_submission).collect()
}

pub(crate) async fn events(p: &SqlitePool, id: &str) -> Result<Vec<Event>> {
    let rows = sqlx::query(
        "SELECT seq, step, outcome, state, detail, at FROM biomero_stage_events WHERE submission_id = ? ORDER BY seq",
    )
    .bind(id)
    .fetch_all(p)
    .await?;
    rows.iter()
        .map(|r| {
            let corrupt = |what: &'static str, message: String| StoreError::Corrupt {
                id: id.to_owned(),
                what,
                message,
            };
            let detail: String = r.try_get("detail")?;
            Ok(Event {
                seq: r
                    .try_get::<i64, _>("seq")
                    .map(|s| i32::try_from(s).unwrap_or(i32::MAX))?,
                step: r.try_get("step")?,
                outcome: Outcome::from_str(&r.try_get::<String, _>("outcome")?)
                    .map_err(|e| corrupt("outcome", e))?,
                state: State::from_str(&r.try_get::<String, _>("state")?)
                    .map_err(|e| corrupt("state", e))?,
                detail: serde_json::from_str(&detail)
                    .map_err(|e| corrupt("detail", e.to_string()))?,
                at: time(r.try_get("at")?),
            })
        })
        .collect()
}

pub(crate) async fn claim(
    p: &SqlitePool,
    owner: &str,
    token: &str,
    lease: Duration,
) -> Result<Option<Claim>> {
    // SQLite has one writer at a time (BEGIN IMMEDIATE), so select-then-lease
    // is atomic. As on PostgreSQL, a claimed submission's claimable_at moves to
    // its lease expiry, so the ordered index scan skips held rows and an expired
    // lease makes its submission claimable by itself.
    let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
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
    let submission = row_to_submission(&row)?;
    tx.commit().await?;
    Ok(Some(Claim {
        submission,
        token: token.to_owned(),
        owner: owner.to_owned(),
    }))
}

pub(crate) async fn renew(p: &SqlitePool, c: &Claim, lease: Duration) -> Result<bool> {
    let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
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

pub(crate) async fn advance(p: &SqlitePool, c: &Claim, t: &Transition) -> Result<Submission> {
    advance_in(p, c, t, false).await
}

pub(crate) async fn advance_and_release(
    p: &SqlitePool,
    c: &Claim,
    t: &Transition,
) -> Result<Submission> {
    advance_in(p, c, t, true).await
}

async fn advance_in(
    p: &SqlitePool,
    c: &Claim,
    t: &Transition,
    release: bool,
) -> Result<Submission> {
    let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
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
    let current = row_to_submission(&row)?;
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
    sqlx::query(
        "INSERT INTO biomero_stage_events (submission_id, seq, step, outcome, state, detail, at) VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM biomero_stage_events WHERE submission_id = ?), ?, ?, ?, ?, ?)",
    )
    .bind(&c.submission.id)
    .bind(&c.submission.id)
    .bind(&t.step)
    .bind(t.outcome.as_str())
    .bind(state.as_str())
    .bind(t.detail.to_string())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let row = sqlx::query(select_submissions!("WHERE id = ?"))
        .bind(&c.submission.id)
        .fetch_one(&mut *tx)
        .await?;
    let s = row_to_submission(&row)?;
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

pub(crate) async fn release(p: &SqlitePool, c: &Claim) -> Result<()> {
    // the row becomes claimable at its next_attempt_at (now, unless a retry backoff is pending)
    let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
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

pub(crate) async fn reap(p: &SqlitePool) -> Result<u64> {
    let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
    let now = now_ms();
    let expired: Vec<(String, String)> = sqlx::query_as(
        "SELECT l.submission_id, s.state FROM biomero_stage_leases l JOIN biomero_stage_submissions s ON s.id = l.submission_id WHERE l.expires_at <= ?",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    for (id, state) in &expired {
        sqlx::query("DELETE FROM biomero_stage_leases WHERE submission_id = ? AND expires_at <= ?")
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

pub(crate) async fn request_cancel(p: &SqlitePool, id: &str) -> Result<Submission> {
    let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
    let now = now_ms();
    let row = sqlx::query(select_submissions!("WHERE id = ?"))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else {
        return Err(StoreError::NotFound(id.to_owned()));
    };
    let s = row_to_submission(&row)?;
    if s.done {
        return Err(StoreError::AlreadyFinished {
            id: id.to_owned(),
            state: s.state.to_string(),
        });
    }
    if !s.cancel_requested {
        sqlx::query(
            // a held submission stays with its holder, who sees the request when it renews
            "UPDATE biomero_stage_submissions SET cancel_requested = 1, waiting_for = NULL, next_attempt_at = ?, claimable_at = MAX(?, COALESCE((SELECT expires_at FROM biomero_stage_leases WHERE submission_id = biomero_stage_submissions.id), 0)), updated_at = ? WHERE id = ?",
        )
        .bind(now)
        .bind(now)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO biomero_stage_events (submission_id, seq, step, outcome, state, detail, at) VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM biomero_stage_events WHERE submission_id = ?), 'cancel', 'cancel_requested', ?, '{}', ?)",
        )
        .bind(id)
        .bind(id)
        .bind(s.state.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    get(p, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(id.to_owned()))
}

pub(crate) async fn resume_waiting(p: &SqlitePool) -> Result<u64> {
    Ok(sqlx::query("UPDATE biomero_stage_submissions SET waiting_for = NULL, next_attempt_at = ?1, claimable_at = ?1 WHERE waiting_for IS NOT NULL AND done = 0")
        .bind(now_ms())
        .execute(p)
        .await?
        .rows_affected())
}

pub(crate) async fn counts(p: &SqlitePool) -> Result<Vec<(State, i64)>> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, COUNT(*) FROM biomero_stage_submissions GROUP BY state")
            .fetch_all(p)
            .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(s, n)| State::from_str(&s).ok().map(|s| (s, n)))
        .collect())
}

pub(crate) async fn depth(p: &SqlitePool) -> Result<i64> {
    let now = now_ms();
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM biomero_stage_submissions WHERE done = 0 AND waiting_for IS NULL AND claimable_at <= ?",
    )
    .bind(now)
    .fetch_one(p)
    .await?)
}
