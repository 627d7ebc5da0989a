//! The queue on PostgreSQL: claims with `FOR UPDATE SKIP LOCKED` plus a lease
//! row guarded by `ON CONFLICT … WHERE expired`, so several daemons on one
//! database never hold the same submission; database time (`now()`) for
//! every lease, so the daemons' clocks do not matter.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};

use crate::Leasing;
use crate::error::{Result, StoreError};
use crate::model::{Claim, State, Submission, Transition};
use crate::rows;

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

impl Leasing for PgPool {
    async fn claim(&self, owner: &str, token: &str, lease: Duration) -> Result<Option<Claim>> {
        // One statement, one round trip. A claimed submission's claimable_at moves
        // to its lease expiry, so the ordered index scan never meets held rows and
        // an expired lease makes its submission claimable again by itself. The
        // lease row (owner, token) is the fencing record; its guard catches the
        // race at expiry, and a row that looked claimable under a live lease (rows
        // from before claimable_at existed) is put behind that lease.
        for _ in 0..8 {
            let row = sqlx::query(
                "WITH picked AS (
                     SELECT id FROM biomero_stage_submissions
                     WHERE NOT done AND waiting_for IS NULL AND claimable_at <= now()
                     ORDER BY claimable_at, created_at
                     FOR UPDATE SKIP LOCKED
                     LIMIT 1
                 ), lease AS (
                     INSERT INTO biomero_stage_leases (submission_id, owner, token, acquired_at, expires_at)
                     SELECT id, $1, $2, now(), now() + make_interval(secs => $3) FROM picked
                     ON CONFLICT (submission_id) DO UPDATE
                         SET owner = EXCLUDED.owner, token = EXCLUDED.token, acquired_at = EXCLUDED.acquired_at, expires_at = EXCLUDED.expires_at
                         WHERE biomero_stage_leases.expires_at <= now()
                     RETURNING submission_id, expires_at
                 ), claimed AS (
                     UPDATE biomero_stage_submissions s SET claimable_at = lease.expires_at
                     FROM lease WHERE s.id = lease.submission_id
                     RETURNING s.id, s.workflow, s.request, s.state, s.done, s.waiting_for, s.error, s.attempts, s.next_attempt_at, s.cancel_requested, s.data, s.created_at, s.updated_at
                 ), behind AS (
                     UPDATE biomero_stage_submissions s SET claimable_at = l.expires_at
                     FROM picked, biomero_stage_leases l
                     WHERE s.id = picked.id AND l.submission_id = picked.id AND NOT EXISTS (SELECT 1 FROM lease)
                 )
                 SELECT picked.id AS picked, claimed.* FROM picked LEFT JOIN claimed ON claimed.id = picked.id",
            )
            .bind(owner)
            .bind(token)
            .bind(secs(lease))
            .fetch_optional(self)
            .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            if row.try_get::<Option<String>, _>("id")?.is_some() {
                return Ok(Some(Claim {
                    submission: rows::submission(&row)?,
                    token: token.to_owned(),
                    owner: owner.to_owned(),
                }));
            }
        }
        Ok(None)
    }

    async fn renew(&self, c: &Claim, lease: Duration) -> Result<bool> {
        let r: Option<bool> = sqlx::query_scalar(
            "WITH renewed AS (
                 UPDATE biomero_stage_leases SET expires_at = now() + make_interval(secs => $3)
                 WHERE submission_id = $1 AND token = $2 AND expires_at > now()
                 RETURNING submission_id, expires_at
             )
             UPDATE biomero_stage_submissions s SET claimable_at = GREATEST(s.next_attempt_at, r.expires_at)
             FROM renewed r WHERE s.id = r.submission_id
             RETURNING s.cancel_requested",
        )
        .bind(&c.submission.id)
        .bind(&c.token)
        .bind(secs(lease))
        .fetch_optional(self)
        .await?;
        r.ok_or_else(|| StoreError::LeaseLost(c.submission.id.clone()))
    }

    async fn advance(&self, c: &Claim, t: &Transition, release: bool) -> Result<Submission> {
        // One statement: the row lock (submission first, then its lease, the
        // order claims use too), the lease check, the projection, the event and,
        // for the last record of a run, the release. While the claim is kept the
        // row stays out of the claimable range until the lease expires.
        let row = sqlx::query(
            "WITH current AS (
                 SELECT s.id, l.expires_at AS held_until
                 FROM biomero_stage_submissions s
                 JOIN biomero_stage_leases l ON l.submission_id = s.id AND l.token = $2 AND l.expires_at > now()
                 WHERE s.id = $1
                 FOR UPDATE OF s
             ), updated AS (
                 UPDATE biomero_stage_submissions s SET
                     state = COALESCE($3, s.state),
                     done = $4,
                     waiting_for = $5,
                     error = COALESCE($6, CASE WHEN $7 = 'succeeded' THEN NULL ELSE s.error END),
                     attempts = CASE $7 WHEN 'retrying' THEN s.attempts + 1 WHEN 'succeeded' THEN 0 ELSE s.attempts END,
                     next_attempt_at = COALESCE($8, now()),
                     claimable_at = CASE WHEN $9 THEN COALESCE($8, now()) ELSE GREATEST(COALESCE($8, now()), current.held_until) END,
                     data = CASE WHEN $7 = 'succeeded'
                         THEN (CASE WHEN jsonb_typeof(s.data) = 'object' THEN s.data ELSE '{}'::jsonb END) || jsonb_build_object($10::text, $11::jsonb)
                         ELSE s.data END,
                     updated_at = now()
                 FROM current WHERE s.id = current.id
                 RETURNING s.id, s.workflow, s.request, s.state, s.done, s.waiting_for, s.error, s.attempts, s.next_attempt_at, s.cancel_requested, s.data, s.created_at, s.updated_at
             ), event AS (
                 INSERT INTO biomero_stage_events (submission_id, seq, step, outcome, state, detail)
                 SELECT updated.id, (SELECT COALESCE(MAX(seq), 0) + 1 FROM biomero_stage_events WHERE submission_id = $1), $10, $7, updated.state, $11
                 FROM updated
                 WHERE NOT ($7 = 'progress' AND EXISTS (
                     SELECT 1 FROM (SELECT step, outcome, detail FROM biomero_stage_events
                                    WHERE submission_id = $1 ORDER BY seq DESC LIMIT 1) last
                     WHERE last.step = $10 AND last.outcome = 'progress' AND last.detail = $11::jsonb))
             ), released AS (
                 DELETE FROM biomero_stage_leases WHERE $9 AND submission_id = $1 AND token = $2 AND EXISTS (SELECT 1 FROM updated)
             )
             SELECT * FROM updated",
        )
        .bind(&c.submission.id)
        .bind(&c.token)
        .bind(t.state.map(State::as_str))
        .bind(t.done)
        .bind(&t.waiting_for)
        .bind(&t.error)
        .bind(t.outcome.as_str())
        .bind(t.retry_at)
        .bind(release)
        .bind(&t.step)
        .bind(&t.detail)
        .fetch_optional(self)
        .await?;
        match row {
            Some(row) => rows::submission(&row),
            None => Err(StoreError::LeaseLost(c.submission.id.clone())),
        }
    }

    async fn release(&self, c: &Claim) -> Result<()> {
        // the row becomes claimable at its next_attempt_at (now, unless a retry backoff is pending)
        sqlx::query(
            "WITH released AS (
                 DELETE FROM biomero_stage_leases WHERE submission_id = $1 AND token = $2 RETURNING submission_id
             ), unheld AS (
                 UPDATE biomero_stage_submissions s SET claimable_at = s.next_attempt_at
                 FROM released r WHERE s.id = r.submission_id
                 RETURNING s.id
             )
             SELECT pg_notify('biomero_stage', id) FROM unheld",
        )
        .bind(&c.submission.id)
        .bind(&c.token)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn reap(&self) -> Result<u64> {
        let mut tx = self.begin().await?;
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
}
