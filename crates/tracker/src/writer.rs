//! Appending to BIOMERO's store: exactly once, in order, with the views.
//!
//! [`Tracker::append`] is given every event of one run, in order, each with
//! its `(originator_id, originator_version)` already fixed. In one
//! transaction it takes the lock BIOMERO's own recorder takes
//! (`LOCK TABLE workflowtracker_events IN EXCLUSIVE MODE`, so notification ids
//! are committed in order), reads which of them the store already holds,
//! inserts the rest, and writes the view rows BIOMERO's followers would write
//! for exactly those. A writer killed at any instant leaves all or nothing;
//! run again, it finds the prefix written and appends the remainder. Two
//! writers racing serialise on the lock, and the store's unique
//! `(originator_id, originator_version)` index turns any other writer of the
//! same version into an error, never a duplicate.
//!
//! BIOMERO's followers record how far they have read (`*_tracking`). A
//! follower that had read everything before these events is moved past them
//! in the same transaction (its rows are the ones just written); one that is
//! behind is left alone, and applies them later to the same result.

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use crate::event::{Kind, StoredEvent, TrackedEvent};
use crate::project::{Enabled, Projections, RowWrite, Rules};
use crate::url::TrackerUrl;

/// BIOMERO's event table (`WorkflowTracker` application, eventsourcing_sqlalchemy).
pub const EVENTS_TABLE: &str = "workflowtracker_events";

/// The followers' tracking tables, with the setting that runs each follower.
const TRACKING: [(&str, fn(&Enabled) -> bool); 4] = [
    ("jobaccounting_tracking", |e| e.job_accounting),
    ("jobprogress_tracking", |e| e.job_progress),
    ("workflowprogress_tracking", |e| e.job_progress),
    ("workflowanalytics_tracking", |e| e.workflow_analytics),
];

/// The tables as BIOMERO 2.8.3 creates them (eventsourcing_sqlalchemy 1.0.1 and
/// `biomero/database.py`), each created only when missing: a role that may write
/// BIOMERO's tables need not be allowed to create tables.
const SCHEMA: [(&str, &str); 5] = [
    (
        "workflowtracker_events",
        "CREATE TABLE IF NOT EXISTS workflowtracker_events (
            id BIGSERIAL PRIMARY KEY,
            originator_id UUID NOT NULL,
            originator_version BIGINT NOT NULL,
            topic TEXT NOT NULL,
            state BYTEA NOT NULL
        );
        CREATE UNIQUE INDEX IF NOT EXISTS workflowtracker_events_aggregate_idx
            ON workflowtracker_events (originator_id, originator_version)",
    ),
    (
        "biomero_job_view",
        r#"CREATE TABLE IF NOT EXISTS biomero_job_view (
            slurm_job_id SERIAL PRIMARY KEY,
            "user" INTEGER NOT NULL,
            "group" INTEGER NOT NULL,
            task_id UUID
        )"#,
    ),
    (
        "biomero_job_progress_view",
        "CREATE TABLE IF NOT EXISTS biomero_job_progress_view (
            slurm_job_id SERIAL PRIMARY KEY,
            status VARCHAR NOT NULL,
            progress VARCHAR
        )",
    ),
    (
        "biomero_workflow_progress_view",
        r#"CREATE TABLE IF NOT EXISTS biomero_workflow_progress_view (
            workflow_id UUID PRIMARY KEY,
            status VARCHAR,
            progress VARCHAR,
            "user" INTEGER,
            "group" INTEGER,
            name VARCHAR,
            task VARCHAR,
            main_task_name VARCHAR,
            start_time TIMESTAMP WITHOUT TIME ZONE NOT NULL
        )"#,
    ),
    (
        "biomero_task_execution",
        "CREATE TABLE IF NOT EXISTS biomero_task_execution (
            task_id UUID PRIMARY KEY,
            task_name VARCHAR NOT NULL,
            task_version VARCHAR,
            user_id INTEGER,
            group_id INTEGER,
            status VARCHAR NOT NULL,
            start_time TIMESTAMP WITHOUT TIME ZONE NOT NULL,
            end_time TIMESTAMP WITHOUT TIME ZONE,
            error_type VARCHAR
        )",
    ),
];

/// Why BIOMERO's store could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    /// The database did not answer.
    #[error("BIOMERO's event store at {url} cannot be reached: {reason}")]
    Unreachable {
        /// Where (no password).
        url: String,
        /// What the driver said.
        reason: String,
    },
    /// Our role may not do what it needs.
    #[error(
        "BIOMERO's event store at {url} refused biomero-stage's role: {reason}; grant it SELECT, INSERT, UPDATE on workflowtracker_events (LOCK ... IN EXCLUSIVE MODE needs UPDATE) and on the view tables biomero_workflow_progress_view, biomero_task_execution, biomero_job_view and biomero_job_progress_view, SELECT, UPDATE on the *_tracking tables, and USAGE on workflowtracker_events_id_seq (deploy/biomero-events.md)"
    )]
    Denied {
        /// Where (no password).
        url: String,
        /// What the database said.
        reason: String,
    },
    /// The store holds other events for one of our aggregates.
    #[error(
        "BIOMERO's event store holds other events for {originator}: {reason}; nothing was written for this run"
    )]
    Conflict {
        /// The aggregate.
        originator: Uuid,
        /// What differs.
        reason: String,
    },
    /// Another writer took this version of the aggregate first (the store's unique index).
    #[error("another writer wrote version {version} of {originator} first; nothing was written")]
    Raced {
        /// The aggregate.
        originator: Uuid,
        /// The version both wrote.
        version: i64,
    },
    /// Any other database error.
    #[error("BIOMERO's event store at {url}: {reason}")]
    Database {
        /// Where (no password).
        url: String,
        /// What the database said.
        reason: String,
    },
}

/// What one [`Tracker::append`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Appended {
    /// Events the store already held.
    pub present: usize,
    /// Events inserted now.
    pub inserted: usize,
    /// View rows written.
    pub rows: usize,
    /// Followers moved past the new events.
    pub followers_advanced: usize,
}

/// A connection to BIOMERO's store. Cheap to clone.
#[derive(Clone)]
pub struct Tracker {
    pub(crate) pool: PgPool,
    url: TrackerUrl,
    enabled: Enabled,
    rules: Rules,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("url", &self.url.to_string())
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl Tracker {
    /// A tracker for the store at `url` projecting the `enabled` views. Connects when
    /// first used, so a store that is down does not stop the caller from starting.
    pub fn new(url: TrackerUrl, enabled: Enabled) -> Result<Tracker, TrackerError> {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy(url.expose())
            .map_err(|e| TrackerError::Database {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Tracker {
            pool,
            url,
            enabled,
            rules: Rules::default(),
        })
    }

    /// The same tracker, projecting the views as BIOMERO `rules` does.
    #[must_use]
    pub fn with_rules(mut self, rules: Rules) -> Tracker {
        self.rules = rules;
        self
    }

    /// Which BIOMERO's followers the views are projected as.
    pub fn rules(&self) -> Rules {
        self.rules
    }

    /// Where (no password).
    pub fn url(&self) -> &TrackerUrl {
        &self.url
    }

    pub(crate) fn error(&self, e: &sqlx::Error) -> TrackerError {
        let url = self.url.to_string();
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_) => TrackerError::Unreachable {
                url,
                reason: e.to_string(),
            },
            sqlx::Error::Database(d) if d.code().as_deref() == Some("42501") => {
                TrackerError::Denied {
                    url,
                    reason: d.message().to_owned(),
                }
            }
            sqlx::Error::Database(d) => TrackerError::Database {
                url,
                reason: d.message().to_owned(),
            },
            other => TrackerError::Database {
                url,
                reason: other.to_string(),
            },
        }
    }

    /// Creates BIOMERO's event table and view tables if BIOMERO has not yet.
    pub async fn ensure_tables(&self) -> Result<(), TrackerError> {
        let mut conn = self.pool.acquire().await.map_err(|e| self.error(&e))?;
        // two daemons starting at once must not race on CREATE TABLE IF NOT EXISTS
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(|e| self.error(&e))?;
        sqlx::query("SELECT pg_advisory_xact_lock(7436520815)")
            .execute(&mut *tx)
            .await
            .map_err(|e| self.error(&e))?;
        for (table, ddl) in SCHEMA {
            let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(table)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| self.error(&e))?;
            if !exists {
                sqlx::raw_sql(sqlx::AssertSqlSafe(ddl))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.error(&e))?;
            }
        }
        tx.commit().await.map_err(|e| self.error(&e))
    }

    /// A round trip to the store.
    pub async fn ping(&self) -> Result<(), TrackerError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| self.error(&e))
    }

    /// The stored events of these aggregates, in the store's order.
    pub async fn read(&self, originators: &[Uuid]) -> Result<Vec<StoredEvent>, TrackerError> {
        let rows = sqlx::query(
            "SELECT id, originator_id, originator_version, topic, state FROM workflowtracker_events WHERE originator_id = ANY($1) ORDER BY id",
        )
        .bind(originators)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.error(&e))?;
        rows.iter()
            .map(|r| stored(r).map_err(|e| self.error(&e)))
            .collect()
    }

    /// Appends what the store does not hold yet of `events` (every event of one
    /// run, in order), with the view rows for them, in one transaction.
    pub async fn append(&self, events: &[TrackedEvent]) -> Result<Appended, TrackerError> {
        self.append_shared(events, &[]).await
    }

    /// Appends `events` as [`Tracker::append`] does, except that those of the `shared`
    /// aggregates (a run BIOMERO created and its launcher task, which other writers also
    /// append to) are not at fixed versions: each goes after whatever the store holds of its
    /// aggregate, once, recognised by its content. The views are projected from everything
    /// the store holds of the run (BIOMERO's events and every writer's tasks) and then these.
    pub async fn append_shared(
        &self,
        events: &[TrackedEvent],
        shared: &[Uuid],
    ) -> Result<Appended, TrackerError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.error(&e))?;
        let r = self.append_in(&mut tx, events, shared).await;
        match r {
            Ok(a) => {
                tx.commit().await.map_err(|e| self.error(&e))?;
                Ok(a)
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    /// Takes BIOMERO's own lock on the event table for the rest of `tx`.
    pub(crate) async fn lock(
        &self,
        tx: &mut Transaction<'static, Postgres>,
    ) -> Result<(), TrackerError> {
        sqlx::query("SET LOCAL lock_timeout = '30s'")
            .execute(&mut **tx)
            .await
            .map_err(|e| self.error(&e))?;
        sqlx::query("LOCK TABLE workflowtracker_events IN EXCLUSIVE MODE")
            .execute(&mut **tx)
            .await
            .map_err(|e| self.error(&e))?;
        Ok(())
    }

    /// The stored events of `originators`, in the store's order, within `tx`.
    pub(crate) async fn read_in(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        originators: &[Uuid],
    ) -> Result<Vec<StoredEvent>, TrackerError> {
        let rows = sqlx::query(
            "SELECT id, originator_id, originator_version, topic, state FROM workflowtracker_events WHERE originator_id = ANY($1) ORDER BY id",
        )
        .bind(originators)
        .fetch_all(&mut **tx)
        .await
        .map_err(|e| self.error(&e))?;
        rows.iter()
            .map(|r| stored(r).map_err(|e| self.error(&e)))
            .collect()
    }

    pub(crate) async fn append_in(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        events: &[TrackedEvent],
        shared: &[Uuid],
    ) -> Result<Appended, TrackerError> {
        self.lock(tx).await?;
        let is_shared = |u: &Uuid| shared.contains(u);
        let own: Vec<&TrackedEvent> = events
            .iter()
            .filter(|e| !is_shared(&e.originator))
            .collect();
        let mut originators: Vec<Uuid> = own.iter().map(|e| e.originator).collect();
        originators.extend_from_slice(shared);
        if !shared.is_empty() {
            // the tasks of a shared run: BIOMERO's launcher, other writers' tasks
            for e in self.read_in(tx, shared).await? {
                if let Ok(TrackedEvent {
                    kind: Kind::TaskAdded { task_id },
                    ..
                }) = TrackedEvent::decode(&e)
                {
                    originators.push(task_id);
                }
            }
        }
        originators.sort_unstable();
        originators.dedup();
        let stored_events = self.read_in(tx, &originators).await?;
        let mut own_originators: Vec<Uuid> = own.iter().map(|e| e.originator).collect();
        own_originators.sort_unstable();
        own_originators.dedup();
        let mut held: BTreeMap<(Uuid, i64), String> = BTreeMap::new();
        let mut next_version: BTreeMap<Uuid, i64> = BTreeMap::new();
        let mut decoded = Vec::with_capacity(stored_events.len());
        for e in &stored_events {
            if own_originators.binary_search(&e.originator_id).is_ok() {
                held.insert((e.originator_id, e.originator_version), e.topic.clone());
            }
            let v = next_version.entry(e.originator_id).or_insert(0);
            *v = (*v).max(e.originator_version + 1);
            // events of other kinds (BIOMERO's newer ones) are in no view we project
            if let Ok(d) = TrackedEvent::decode(e) {
                decoded.push(d);
            }
        }
        let present = own
            .iter()
            .take_while(|e| held.contains_key(&(e.originator, e.version)))
            .count();
        for e in &own[..present] {
            let topic = &held[&(e.originator, e.version)];
            if *topic != e.topic() {
                return Err(TrackerError::Conflict {
                    originator: e.originator,
                    reason: format!(
                        "version {} is `{topic}`, biomero-stage's is `{}`",
                        e.version,
                        e.topic()
                    ),
                });
            }
        }
        if held.len() > present {
            let extra = held
                .keys()
                .find(|k| {
                    !own[..present]
                        .iter()
                        .any(|e| (e.originator, e.version) == **k)
                })
                .copied()
                .unwrap_or_default();
            return Err(TrackerError::Conflict {
                originator: extra.0,
                reason: format!("version {} was written by another program", extra.1),
            });
        }
        // which events go in now: our own after the prefix; shared ones not yet there
        let mut own_seen = 0;
        let mut new = Vec::with_capacity(events.len());
        for e in events {
            if is_shared(&e.originator) {
                let there = decoded
                    .iter()
                    .any(|d| d.originator == e.originator && same_content(&d.kind, &e.kind));
                if !there && !next_version.contains_key(&e.originator) {
                    return Err(TrackerError::Conflict {
                        originator: e.originator,
                        reason: "the store holds no such run or task".into(),
                    });
                }
                new.push(!there);
            } else {
                new.push(own_seen >= present);
                own_seen += 1;
            }
        }
        let mut appended = Appended {
            present: new.iter().filter(|n| !**n).count(),
            ..Appended::default()
        };
        if !new.iter().any(|n| *n) {
            return Ok(appended);
        }
        let max_id: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM workflowtracker_events")
            .fetch_one(&mut **tx)
            .await
            .map_err(|e| self.error(&e))?;
        if max_id.is_none() {
            // The first event of an empty store never gets notification id 1: BIOMERO
            // 2.8.3's rebuild (`reset_tables`) replays from `start=1` with eventsourcing
            // 9.5's `inclusive_of_start=False`, so notification 1 is never replayed.
            // Notification ids may have gaps; one burned id costs nothing.
            sqlx::query("SELECT nextval(pg_get_serial_sequence('workflowtracker_events', 'id'))")
                .execute(&mut **tx)
                .await
                .map_err(|e| self.error(&e))?;
        }
        let caught_up = self.caught_up(tx, max_id).await?;
        let mut projections = Projections::with_rules(self.enabled, self.rules);
        for d in &decoded {
            projections.apply(d);
        }
        let mut last_id: i64 = 0;
        for (e, is_new) in events.iter().zip(new) {
            if !is_new {
                continue;
            }
            let mut e = e.clone();
            if is_shared(&e.originator) {
                let v = next_version.entry(e.originator).or_insert(0);
                e.version = *v;
                *v += 1;
            }
            let writes = projections.apply(&e);
            last_id = sqlx::query(
                "INSERT INTO workflowtracker_events (originator_id, originator_version, topic, state) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(e.originator)
            .bind(e.version)
            .bind(e.topic())
            .bind(e.state())
            .fetch_one(&mut **tx)
            .await
            .map_err(|err| match &err {
                sqlx::Error::Database(d) if d.code().as_deref() == Some("23505") => {
                    TrackerError::Raced {
                        originator: e.originator,
                        version: e.version,
                    }
                }
                _ => self.error(&err),
            })?
            .try_get(0)
            .map_err(|err| self.error(&err))?;
            appended.inserted += 1;
            for w in &writes {
                self.write_row(tx, w).await?;
                appended.rows += 1;
            }
        }
        for table in caught_up {
            let sql = format!(
                "UPDATE {table} SET notification_id = $1 WHERE application_name = 'WorkflowTracker'"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(last_id)
                .execute(&mut **tx)
                .await
                .map_err(|e| self.error(&e))?;
            appended.followers_advanced += 1;
        }
        Ok(appended)
    }

    /// The followers that have read everything up to `max_id`.
    async fn caught_up(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        max_id: Option<i64>,
    ) -> Result<Vec<&'static str>, TrackerError> {
        let mut caught_up = Vec::new();
        for (table, on) in TRACKING {
            if !on(&self.enabled) {
                continue;
            }
            let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(table)
                .fetch_one(&mut **tx)
                .await
                .map_err(|e| self.error(&e))?;
            if !exists {
                continue;
            }
            let sql = format!(
                "SELECT notification_id FROM {table} WHERE application_name = 'WorkflowTracker'"
            );
            let tracked: Option<Option<i64>> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_optional(&mut **tx)
                .await
                .map_err(|e| self.error(&e))?;
            if let (Some(Some(t)), Some(max)) = (tracked, max_id)
                && t >= max
            {
                caught_up.push(table);
            }
        }
        Ok(caught_up)
    }

    async fn write_row(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        w: &RowWrite,
    ) -> Result<(), TrackerError> {
        let int = |v: i64| {
            i32::try_from(v).map_err(|_| TrackerError::Database {
                url: self.url.to_string(),
                reason: format!("{v} does not fit BIOMERO's integer columns"),
            })
        };
        let r = match w {
            RowWrite::WorkflowProgress(r) => sqlx::query(
                r#"INSERT INTO biomero_workflow_progress_view (workflow_id, status, progress, "user", "group", name, task, main_task_name, start_time)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                   ON CONFLICT (workflow_id) DO UPDATE SET status = EXCLUDED.status, progress = EXCLUDED.progress,
                     "user" = EXCLUDED."user", "group" = EXCLUDED."group", name = EXCLUDED.name, task = EXCLUDED.task,
                     main_task_name = EXCLUDED.main_task_name, start_time = EXCLUDED.start_time"#,
            )
            .bind(r.workflow_id)
            .bind(&r.status)
            .bind(&r.progress)
            .bind(int(r.user)?)
            .bind(int(r.group)?)
            .bind(&r.name)
            .bind(&r.task)
            .bind(&r.main_task_name)
            .bind(r.start_time)
            .execute(&mut **tx)
            .await,
            RowWrite::TaskExecution(r) => sqlx::query(
                r"INSERT INTO biomero_task_execution (task_id, task_name, task_version, user_id, group_id, status, start_time, end_time, error_type)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                   ON CONFLICT (task_id) DO UPDATE SET task_name = EXCLUDED.task_name, task_version = EXCLUDED.task_version,
                     user_id = EXCLUDED.user_id, group_id = EXCLUDED.group_id, status = EXCLUDED.status,
                     start_time = EXCLUDED.start_time,
                     end_time = COALESCE(EXCLUDED.end_time, biomero_task_execution.end_time),
                     error_type = COALESCE(EXCLUDED.error_type, biomero_task_execution.error_type)",
            )
            .bind(r.task_id)
            .bind(&r.task_name)
            .bind(&r.task_version)
            .bind(r.user_id.map(int).transpose()?)
            .bind(r.group_id.map(int).transpose()?)
            .bind(&r.status)
            .bind(r.start_time)
            .bind(r.end_time)
            .bind(&r.error_type)
            .execute(&mut **tx)
            .await,
            RowWrite::Job {
                job,
                user,
                group,
                task_id,
            } => sqlx::query(
                r#"INSERT INTO biomero_job_view (slurm_job_id, "user", "group", task_id) VALUES ($1, $2, $3, $4)
                   ON CONFLICT (slurm_job_id) DO UPDATE SET "user" = EXCLUDED."user", "group" = EXCLUDED."group", task_id = EXCLUDED.task_id"#,
            )
            .bind(int(*job)?)
            .bind(int(*user)?)
            .bind(int(*group)?)
            .bind(task_id)
            .execute(&mut **tx)
            .await,
            RowWrite::JobStatus { job, status } => sqlx::query(
                "INSERT INTO biomero_job_progress_view (slurm_job_id, status, progress) VALUES ($1, $2, NULL)
                 ON CONFLICT (slurm_job_id) DO UPDATE SET status = EXCLUDED.status",
            )
            .bind(int(*job)?)
            .bind(status)
            .execute(&mut **tx)
            .await,
            RowWrite::JobProgress { job, progress } => sqlx::query(
                "INSERT INTO biomero_job_progress_view (slurm_job_id, status, progress) VALUES ($1, 'UNKNOWN', $2)
                 ON CONFLICT (slurm_job_id) DO UPDATE SET progress = EXCLUDED.progress",
            )
            .bind(int(*job)?)
            .bind(progress)
            .execute(&mut **tx)
            .await,
        };
        r.map(|_| ()).map_err(|e| self.error(&e))
    }
}

/// Whether two events of one aggregate record the same thing: a shared aggregate's event is
/// written once, and recognised by this when it is already there.
fn same_content(a: &Kind, b: &Kind) -> bool {
    match (a, b) {
        (Kind::TaskAdded { task_id: x }, Kind::TaskAdded { task_id: y }) => x == y,
        (Kind::StatusUpdated { status: x }, Kind::StatusUpdated { status: y }) => x == y,
        (Kind::ResultAdded { result: x }, Kind::ResultAdded { result: y }) => x == y,
        _ => a.class() == b.class(),
    }
}

pub(crate) fn stored(r: &sqlx::postgres::PgRow) -> Result<StoredEvent, sqlx::Error> {
    Ok(StoredEvent {
        id: r.try_get(0)?,
        originator_id: r.try_get(1)?,
        originator_version: r.try_get(2)?,
        topic: r.try_get(3)?,
        state: r.try_get(4)?,
    })
}
