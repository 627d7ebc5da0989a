//! Keeping the queue's size in step with its submissions, not with their age: the
//! history of a submission finished long enough ago is cut to the event that ended it.
//!
//! What stays is what a person looks back for: the submission's row (its request, final
//! state, error and step records: where the results were kept, what was imported), the
//! event that ended it and the notes written after it (a mail sent or not). What goes is the
//! step-by-step history before the end (progress, retries, notes), most of a long run's rows. Ids stay taken, so a submission sent
//! again is still the same one, and event numbers only grow, so a note written later is
//! numbered after the last one kept and is written to BIOMERO's event store like any other.

use std::time::Duration;

use crate::Store;
use crate::error::Result;
use crate::rows::ReadRow;

/// What one [`Store::cut_histories`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cut {
    /// Submissions whose history was cut.
    pub submissions: u64,
    /// Events removed.
    pub events: u64,
}

impl Store {
    /// Cuts the history of up to `limit` submissions that finished more than `older_than`
    /// ago, the longest finished first, to the event that ended it and the notes after it. With `mirrored`, only histories
    /// BIOMERO's event store already holds whole (`biomero_stage_mirror` at the last event)
    /// are cut, so nothing is lost there while it is behind. Open submissions are never cut.
    pub async fn cut_histories(
        &self,
        older_than: Duration,
        mirrored: bool,
        limit: i64,
    ) -> Result<Cut> {
        let secs = i64::try_from(older_than.as_secs()).unwrap_or(i64::MAX / 2_000);
        on_either!(self, |p, d| {
            let mut tx = p.begin_with(d.begin).await?;
            // the event that ended it is the last one that is not a note (a mail sent or
            // not, a result made, written after the end, stays with it)
            let rows = sqlx::query(d.sql(
                "SELECT s.id AS id, (SELECT MAX(e.seq) FROM biomero_stage_events e
                                     WHERE e.submission_id = s.id AND e.outcome <> 'noted') AS last
                 FROM biomero_stage_submissions s
                 WHERE s.done AND s.updated_at < {ago}
                   AND (SELECT MIN(f.seq) FROM biomero_stage_events f WHERE f.submission_id = s.id)
                     < (SELECT MAX(e.seq) FROM biomero_stage_events e
                        WHERE e.submission_id = s.id AND e.outcome <> 'noted')
                   AND (NOT $2 OR COALESCE((SELECT m.seq FROM biomero_stage_mirror m WHERE m.submission_id = s.id), 0)
                     >= (SELECT MAX(a.seq) FROM biomero_stage_events a WHERE a.submission_id = s.id))
                 ORDER BY s.updated_at LIMIT $3",
            ))
            .bind(secs)
            .bind(mirrored)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
            let mut cut = Cut::default();
            for r in &rows {
                let id = r.text("id")?;
                let last = r.count("last")?;
                let gone = sqlx::query(
                    "DELETE FROM biomero_stage_events WHERE submission_id = $1 AND seq < $2",
                )
                .bind(&id)
                .bind(last)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                cut.submissions += 1;
                cut.events += gone;
            }
            tx.commit().await?;
            Ok(cut)
        })
    }
}
