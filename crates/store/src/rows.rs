//! Reading submissions and events from either backend's rows: one mapping,
//! over the few column reads whose stored types differ (JSON as `jsonb` or
//! text, times as `timestamptz` or Unix milliseconds, flags as `boolean` or
//! integers), so a column renamed or a state added changes one place.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use crate::error::{Result, StoreError};
use crate::model::{Event, ListFilter, Outcome, State, Submission};

/// `SELECT <all submission columns> FROM biomero_stage_submissions <tail>` as a `&'static str`.
macro_rules! select_submissions {
    ($tail:literal) => {
        concat!(
            "SELECT id, workflow, request, state, done, waiting_for, error, attempts, next_attempt_at, cancel_requested, data, created_at, updated_at FROM biomero_stage_submissions ",
            $tail
        )
    };
}
pub(crate) use select_submissions;

/// `SELECT <all event columns> FROM biomero_stage_events WHERE submission_id = <p> ORDER BY seq`.
macro_rules! select_events {
    ($placeholder:literal) => {
        concat!(
            "SELECT seq, step, outcome, state, detail, at FROM biomero_stage_events WHERE submission_id = ",
            $placeholder,
            " ORDER BY seq"
        )
    };
}
pub(crate) use select_events;

/// The column reads whose stored types differ between the backends.
pub(crate) trait ReadRow {
    /// A JSON column, or why it is not JSON.
    fn json(&self, col: &str) -> Result<std::result::Result<Value, String>>;
    /// A time column.
    fn time(&self, col: &str) -> Result<DateTime<Utc>>;
    /// A boolean column.
    fn flag(&self, col: &str) -> Result<bool>;
    /// A 32-bit count column (attempts, sequence numbers).
    fn count(&self, col: &str) -> Result<i32>;
    /// A text column.
    fn text(&self, col: &str) -> Result<String>;
    /// A nullable text column.
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
}

impl ReadRow for PgRow {
    fn json(&self, col: &str) -> Result<std::result::Result<Value, String>> {
        Ok(Ok(self.try_get::<Value, _>(col)?))
    }
    fn time(&self, col: &str) -> Result<DateTime<Utc>> {
        Ok(self.try_get(col)?)
    }
    fn flag(&self, col: &str) -> Result<bool> {
        Ok(self.try_get(col)?)
    }
    fn count(&self, col: &str) -> Result<i32> {
        Ok(self.try_get(col)?)
    }
    fn text(&self, col: &str) -> Result<String> {
        Ok(self.try_get(col)?)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        Ok(self.try_get(col)?)
    }
}

impl ReadRow for SqliteRow {
    fn json(&self, col: &str) -> Result<std::result::Result<Value, String>> {
        let text: String = self.try_get(col)?;
        Ok(serde_json::from_str(&text).map_err(|e| e.to_string()))
    }
    fn time(&self, col: &str) -> Result<DateTime<Utc>> {
        Ok(Utc
            .timestamp_millis_opt(self.try_get(col)?)
            .single()
            .unwrap_or_default())
    }
    fn flag(&self, col: &str) -> Result<bool> {
        Ok(self.try_get::<i64, _>(col)? != 0)
    }
    fn count(&self, col: &str) -> Result<i32> {
        Ok(i32::try_from(self.try_get::<i64, _>(col)?).unwrap_or(i32::MAX))
    }
    fn text(&self, col: &str) -> Result<String> {
        Ok(self.try_get(col)?)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        Ok(self.try_get(col)?)
    }
}

/// The error of a stored value that cannot be read back, naming the submission and column.
fn corrupt<'a>(id: &'a str, what: &'static str) -> impl FnOnce(String) -> StoreError + 'a {
    move |message| StoreError::Corrupt {
        id: id.to_owned(),
        what,
        message,
    }
}

/// A submission from a row of `select_submissions!`.
pub(crate) fn submission(r: &impl ReadRow) -> Result<Submission> {
    let id = r.text("id")?;
    Ok(Submission {
        workflow: r.text("workflow")?,
        request: r.json("request")?.map_err(corrupt(&id, "request"))?,
        state: State::from_str(&r.text("state")?).map_err(corrupt(&id, "state"))?,
        done: r.flag("done")?,
        waiting_for: r.opt_text("waiting_for")?,
        error: r.opt_text("error")?,
        attempts: r.count("attempts")?,
        next_attempt_at: r.time("next_attempt_at")?,
        cancel_requested: r.flag("cancel_requested")?,
        data: r.json("data")?.map_err(corrupt(&id, "data"))?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
        id,
    })
}

/// An event of submission `id` from a row of `select_events!`.
pub(crate) fn event(id: &str, r: &impl ReadRow) -> Result<Event> {
    Ok(Event {
        seq: r.count("seq")?,
        step: r.text("step")?,
        outcome: Outcome::from_str(&r.text("outcome")?).map_err(corrupt(id, "outcome"))?,
        state: State::from_str(&r.text("state")?).map_err(corrupt(id, "state"))?,
        detail: r.json("detail")?.map_err(corrupt(id, "detail"))?,
        at: r.time("at")?,
    })
}

/// The rows a list returns: the filter's limit, or 100.
pub(crate) fn list_limit(f: &ListFilter) -> i64 {
    if f.limit > 0 { f.limit } else { 100 }
}

/// `(state, count)` rows with states this build knows.
pub(crate) fn state_counts(rows: Vec<(String, i64)>) -> Vec<(State, i64)> {
    rows.into_iter()
        .filter_map(|(s, n)| State::from_str(&s).ok().map(|s| (s, n)))
        .collect()
}
