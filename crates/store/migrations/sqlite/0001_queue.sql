-- biomero-stage queue on SQLite: submissions (current state as a projection),
-- events (append-only log), leases (which worker holds which submission).
-- Times are Unix milliseconds.
CREATE TABLE biomero_stage_submissions (
    id              TEXT PRIMARY KEY,
    workflow        TEXT NOT NULL,
    request         TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'received',
    done            INTEGER NOT NULL DEFAULT 0,
    waiting_for     TEXT,
    error           TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    data            TEXT NOT NULL DEFAULT '{}',
    created_at      INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    updated_at      INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
);
CREATE INDEX biomero_stage_submissions_runnable ON biomero_stage_submissions (done, next_attempt_at);

CREATE TABLE biomero_stage_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    submission_id TEXT NOT NULL REFERENCES biomero_stage_submissions (id),
    seq           INTEGER NOT NULL,
    step          TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    state         TEXT NOT NULL,
    detail        TEXT NOT NULL DEFAULT '{}',
    at            INTEGER NOT NULL,
    UNIQUE (submission_id, seq)
);

CREATE TABLE biomero_stage_leases (
    submission_id TEXT PRIMARY KEY REFERENCES biomero_stage_submissions (id),
    owner         TEXT NOT NULL,
    token         TEXT NOT NULL,
    acquired_at   INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);
