//! Which submissions' histories are waiting to be written elsewhere (BIOMERO's
//! event store), and recording how far each has been written.
//!
//! Our own event log is the queue the writer drains: nothing is copied, a
//! submission is waiting while its last event's `seq` is beyond the one
//! recorded in `biomero_stage_mirror`.

use chrono::{DateTime, Utc};

use crate::Store;
use crate::error::Result;
use crate::rows::ReadRow;

/// A submission with events not yet written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The submission.
    pub id: String,
    /// Its last event.
    pub seq: i32,
    /// The highest event id among the waiting ones (the log's global order).
    pub last_event: i64,
    /// When the oldest waiting event happened.
    pub oldest: DateTime<Utc>,
}

/// How far behind the writer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lag {
    /// Submissions with events waiting.
    pub submissions: i64,
    /// Events waiting.
    pub events: i64,
    /// When the oldest waiting event happened.
    pub oldest: Option<DateTime<Utc>>,
}

impl Store {
    /// Up to `limit` submissions with events after global event id `after` that are not
    /// written yet, the longest waiting first.
    pub async fn mirror_pending(&self, after: i64, limit: i64) -> Result<Vec<Pending>> {
        on_either!(self, |p, _d| {
            let rows = sqlx::query(
                "SELECT e.submission_id AS id, MAX(e.seq) AS seq, MAX(e.id) AS last_event, MIN(e.at) AS oldest
                 FROM biomero_stage_events e LEFT JOIN biomero_stage_mirror m ON m.submission_id = e.submission_id
                 WHERE e.id > $1 AND e.seq > COALESCE(m.seq, 0)
                 GROUP BY e.submission_id ORDER BY MIN(e.id) LIMIT $2",
            )
            .bind(after)
            .bind(limit)
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(Pending {
                        id: r.text("id")?,
                        seq: r.count("seq")?,
                        last_event: sqlx::Row::try_get(r, "last_event")?,
                        oldest: r.time("oldest")?,
                    })
                })
                .collect()
        })
    }

    /// Records that submission `id`'s history up to `seq` is written.
    pub async fn mirror_done(&self, id: &str, seq: i32) -> Result<()> {
        on_either!(self, |p, d| {
            sqlx::query(d.sql(
                "INSERT INTO biomero_stage_mirror (submission_id, seq) VALUES ($1, $2)
                 ON CONFLICT (submission_id) DO UPDATE SET seq = {greatest}(biomero_stage_mirror.seq, excluded.seq)",
            ))
            .bind(id)
            .bind(seq)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// The highest event id in the log (0 when empty).
    pub async fn last_event_id(&self) -> Result<i64> {
        on_either!(self, |p, _d| {
            let v: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM biomero_stage_events")
                .fetch_one(p)
                .await?;
            Ok(v.unwrap_or(0))
        })
    }

    /// How many events wait to be written, over how many submissions, since when.
    pub async fn mirror_lag(&self) -> Result<Lag> {
        on_either!(self, |p, _d| {
            let r = sqlx::query(
                "SELECT COUNT(DISTINCT e.submission_id) AS submissions, COUNT(*) AS events, MIN(e.at) AS oldest
                 FROM biomero_stage_events e LEFT JOIN biomero_stage_mirror m ON m.submission_id = e.submission_id
                 WHERE e.seq > COALESCE(m.seq, 0)",
            )
            .fetch_one(p)
            .await?;
            let events: i64 = sqlx::Row::try_get(&r, "events")?;
            Ok(Lag {
                submissions: sqlx::Row::try_get(&r, "submissions")?,
                events,
                oldest: if events > 0 {
                    Some(r.time("oldest")?)
                } else {
                    None
                },
            })
        })
    }
}
