//! The queue on PostgreSQL: claims with `FOR UPDATE SKIP LOCKED` plus a lease
//! row guarded by `ON CONFLICT … WHERE expired`, so several daemons on one
//! database never hold the same submission; database time (`now()`) for
//! every lease, so the daemons' clocks do not matter.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::{PgPool, Row};

use crate::error::{Result, StoreError};
use crate::model::{
    Claim, Event, ListFilter, NewSubmission, Outcome, State, Submission, Transition,
};

/// `SELECT <all submission columns> FROM biomero_stage_submissions <tail>` as a `&'static str`.
macro_rules! select_submissions {
    ($tail:literal) => {
        concat!(
            "SELECT id, workflow, request, state, done, waiting_for, error, attempts, next_attempt_at, cancel_requested, data, created_at, updated_at FROM biomero_stage_submissions ",
            $tail
        )
    };
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

pub(crate) async fn connect(url: &str) -> Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await?;
    sqlx::migrate!("./migrations/postgres").run(&pool).await?;
    Ok(pool)
}

fn row_to_submission(r: &PgRow) -> Result<Submission> {
    let id: String = r.try_get("id")?;
    let state: String = r.try_get("state")?;
    Ok(Submission {
        workflow: r.try_get("workflow")?,
        request: r.try_get::<Value, _>("request")?,
        state: State::from_str(&state).map_err(|message| StoreError::Corrupt {
            id: id.clone(),
            what: "state",
            message,
        })?,
        done: r.try_get("done")?,
        waiting_for: r.try_get("waiting_for")?,
        error: r.try_get("error")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        cancel_requested: r.try_get("cancel_requested")?,
        data: r.try_get::<Value, _>("data")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        id,
    })
}

pub(crate) async fn get(p: &PgPool, id: &str) -> Result<Option<Submission>> {
    let r = sqlx::query(select_submissions!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(p)
        .await?;
    r.as_ref().map(row_to_submission).transpose()
}

pub(crate) async fn insert(p: &PgPool, new: &NewSubmission) -> Result<(Submission, bool)> {
    let mut tx = p.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO biomero_stage_submissions (id, workflow, request) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&new.id)
    .bind(&new.workflow)
    .bind(&new.request)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        sqlx::query(
            "INSERT INTO biomero_stage_events (submission_id, seq, step, outcome, state, detail) VALUES ($1, 1, 'intake', 'accepted', 'received', $2)",
        )
        .bind(&new.id)
        .bind(serde_json::json!({ "workflow": new.workflow }))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    let s = get(p, &new.id)
        .await?
        .ok_or_else(|| StoreError::NotFound(new.id.clone()))?;
    Ok((s, inserted))
}

pub(crate) async fn list(p: &PgPool, f: &ListFilter) -> Result<Vec<Submission>> {
    let limit = if f.limit > 0 { f.limit } else { 100 };
    let rows = match f.state {
        Some(st) => {
            sqlx::query(select_submissions!(
                "WHERE state = $1 ORDER BY created_at DESC, id LIMIT $2"
            ))
            .bind(st.as_str())
            .bind(limit)
            .fetch_all(p)
            .await?
        }
        None => {
            sqlx::query(select_submissions!("ORDER BY created_at DESC, id LIMIT $1"))
                .bind(limit)
                .fetch_all(p)
                .await?
        }
    };
    rows.iter().map(row_to_submission).collect()
}

pub(crate) async fn events(p: &PgPool, id: &str) -> Result<Vec<Event>> {
    let rows = sqlx::query(
        "SELECT seq, step, outcome, state, detail, at FROM biomero_stage_events WHERE submission_id = $1 ORDER BY seq",
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
            Ok(Event {
                seq: r.try_get("seq")?,
                step: r.try_get("step")?,
                outcome: Outcome::from_str(&r.try_get::<String, _>("outcome")?)
                    .map_err(|e| corrupt("outcome", e))?,
                state: State::from_str(&r.try_get::<String, _>("state")?)
                    .map_err(|e| corrupt("state", e))?,
                detail: r.try_get("detail")?,
                at: r.try_get::<DateTime<Utc>, _>("at")?,
            })
        })
        .collect()
}

pub(crate) async fn claim(
    p: &PgPool,
    owner: &str,
    token: &str,
    lease: Duration,
) -> Result<Option<Claim>> {
    let mut tx = p.begin().await?;
    let id: Option<String> = sqlx::query_scalar(
        "WITH candidate AS (
             SELECT s.id FROM biomero_stage_submissions s
             WHERE NOT s.done AND s.waiting_for IS NULL AND s.next_attempt_at <= now()
               AND NOT EXISTS (SELECT 1 FROM biomero_stage_leases l WHERE l.submission_id = s.id AND l.expires_at > now())
             ORDER BY s.next_attempt_at, s.created_at
             FOR UPDATE OF s SKIP LOCKED
             LIMIT 1
         )
         INSERT INTO biomero_stage_leases (submission_id, owner, token, acquired_at, expires_at)
         SELECT id, $1, $2, now(), now() + make_interval(secs => $3) FROM candidate
         ON CONFLICT (submission_id) DO UPDATE
             SET owner = EXCLUDED.owner, token = EXCLUDED.token, acquired_at = EXCLUDED.acquired_at, expires_at = EXCLUDED.expires_at
             WHERE biomero_stage_leases.expires_at <= now()
         RETURNING submission_id",
    )
    .bind(owner)
    .bind(token)
    .bind(secs(lease))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = id else {
        tx.commit().await?;
        return Ok(None);
    };
    let row = sqlx::query(select_submissions!("WHERE id = $1"))
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

pub(crate) async fn renew(p: &PgPool, c: &Claim, lease: Duration) -> Result<bool> {
    let r: Option<bool> = sqlx::query_scalar(
        "WITH renewed AS (
             UPDATE biomero_stage_leases SET expires_at = now() + make_interval(secs => $3)
             WHERE submission_id = $1 AND token = $2 AND expires_at > now()
             RETURNING submission_id
         )
         SELECT s.cancel_requested FROM biomero_stage_submissions s JOIN renewed r ON r.submission_id = s.id",
    )
    .bind(&c.submission.id)
    .bind(&c.token)
    .bind(secs(lease))
    .fetch_optional(p)
    .await?;
    r.ok_or_else(|| StoreError::LeaseLost(c.submission.id.clone()))
}

pub(crate) async fn advance(p: &PgPool, c: &Claim, t: &Transition) -> Result<Submission> {
    let mut tx = p.begin().await?;
    // Lock order everywhere: the submission row first, then its lease row (claims do the same).
    let row = sqlx::query(select_submissions!("WHERE id = $1 FOR UPDATE"))
        .bind(&c.submission.id)
        .fetch_one(&mut *tx)
        .await?;
    let held: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM biomero_stage_leases WHERE submission_id = $1 AND token = $2 AND expires_at > now()",
    )
    .bind(&c.submission.id)
    .bind(&c.token)
    .fetch_optional(&mut *tx)
    .await?;
    if held.is_none() {
        return Err(StoreError::LeaseLost(c.submission.id.clone()));
    }
    let current = row_to_submission(&row)?;
    let state = t.state.unwrap_or(current.state);
    let data = crate::merged_data(&current.data, t);
    let attempts = match t.outcome {
        Outcome::Retrying => current.attempts + 1,
        Outcome::Succeeded => 0,
        _ => current.attempts,
    };
    let row = sqlx::query(
        "UPDATE biomero_stage_submissions SET state = $2, done = $3, waiting_for = $4,
             error = COALESCE($5, CASE WHEN $6 THEN NULL ELSE error END), attempts = $7,
             next_attempt_at = COALESCE($8, now()), data = $9, updated_at = now()
         WHERE id = $1
         RETURNING id, workflow, request, state, done, waiting_for, error, attempts, next_attempt_at, cancel_requested, data, created_at, updated_at",
    )
    .bind(&c.submission.id)
    .bind(state.as_str())
    .bind(t.done)
    .bind(&t.waiting_for)
    .bind(&t.error)
    .bind(t.outcome == Outcome::Succeeded)
    .bind(attempts)
    .bind(t.retry_at)
    .bind(&data)
    .fetch_one(&mut *tx)
    .await?;
    let s = row_to_submission(&row)?;
    sqlx::query(
        "INSERT INTO biomero_stage_events (submission_id, seq, step, outcome, state, detail)
         VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM biomero_stage_events WHERE submission_id = $1), $2, $3, $4, $5)",
    )
    .bind(&c.submission.id)
    .bind(&t.step)
    .bind(t.outcome.as_str())
    .bind(state.as_str())
    .bind(&t.detail)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(s)
}

pub(crate) async fn release(p: &PgPool, c: &Claim) -> Result<()> {
    sqlx::query("DELETE FROM biomero_stage_leases WHERE submission_id = $1 AND token = $2")
        .bind(&c.submission.id)
        .bind(&c.token)
        .execute(p)
        .await?;
    Ok(())
}

pub(crate) async fn reap(p: &PgPool) -> Result<u64> {
    let mut tx = p.begin().await?;
    let expired: Vec<(String, String)> = sqlx::query_as(
        "DELETE FROM biomero_stage_leases l USING biomero_stage_submissions s
         WHERE s.id = l.submission_id AND l.expires_at <= now()
         RETURNING l.submission_id, s.state",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (id, state) in &expired {
        sqlx::query(
            "INSERT INTO biomero_stage_events (submission_id, seq, step, outcome, state, detail)
             VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM biomero_stage_events WHERE submission_id = $1), 'lease', 'lease_expired', $2, '{}'::jsonb)",
        )
        .bind(id)
        .bind(state)
        .execute(&mut *tx)
        .await?;
        // wake the other daemons
        sqlx::query("SELECT pg_notify('biomero_stage', $1)")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(expired.len() as u64)
}

pub(crate) async fn request_cancel(p: &PgPool, id: &str) -> Result<Submission> {
    let mut tx = p.begin().await?;
    let row = sqlx::query(select_submissions!("WHERE id = $1 FOR UPDATE"))
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
            "UPDATE biomero_stage_submissions SET cancel_requested = true, waiting_for = NULL, next_attempt_at = now(), updated_at = now() WHERE id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO biomero_stage_events (submission_id, seq, step, outcome, state, detail)
             VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM biomero_stage_events WHERE submission_id = $1), 'cancel', 'cancel_requested', $2, '{}'::jsonb)",
        )
        .bind(id)
        .bind(s.state.as_str())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    get(p, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(id.to_owned()))
}

pub(crate) async fn resume_waiting(p: &PgPool) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE biomero_stage_submissions SET waiting_for = NULL, next_attempt_at = now() WHERE waiting_for IS NOT NULL AND NOT done",
    )
    .execute(p)
    .await?
    .rows_affected())
}

pub(crate) async fn counts(p: &PgPool) -> Result<Vec<(State, i64)>> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, COUNT(*) FROM biomero_stage_submissions GROUP BY state")
            .fetch_all(p)
            .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(s, n)| State::from_str(&s).ok().map(|s| (s, n)))
        .collect())
}

pub(crate) async fn depth(p: &PgPool) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM biomero_stage_submissions s WHERE NOT s.done AND s.waiting_for IS NULL AND s.next_attempt_at <= now()
           AND NOT EXISTS (SELECT 1 FROM biomero_stage_leases l WHERE l.submission_id = s.id AND l.expires_at > now())",
    )
    .fetch_one(p)
    .await?)
}
