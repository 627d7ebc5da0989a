-- biomero-stage queue on PostgreSQL (the BIOMERO database): submissions (current
-- state as a projection), events (append-only log), leases. Any program may insert
-- a submission row (state 'received'); a trigger notifies the daemons.
CREATE TABLE biomero_stage_submissions (
    id              TEXT PRIMARY KEY,
    workflow        TEXT NOT NULL,
    request         JSONB NOT NULL,
    state           TEXT NOT NULL DEFAULT 'received',
    done            BOOLEAN NOT NULL DEFAULT false,
    waiting_for     TEXT,
    error           TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    cancel_requested BOOLEAN NOT NULL DEFAULT false,
    data            JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX biomero_stage_submissions_runnable ON biomero_stage_submissions (next_attempt_at) WHERE NOT done;

CREATE TABLE biomero_stage_events (
    id            BIGSERIAL PRIMARY KEY,
    submission_id TEXT NOT NULL REFERENCES biomero_stage_submissions (id),
    seq           INTEGER NOT NULL,
    step          TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    state         TEXT NOT NULL,
    detail        JSONB NOT NULL DEFAULT '{}'::jsonb,
    at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (submission_id, seq)
);

CREATE TABLE biomero_stage_leases (
    submission_id TEXT PRIMARY KEY REFERENCES biomero_stage_submissions (id),
    owner         TEXT NOT NULL,
    token         TEXT NOT NULL,
    acquired_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL
);

CREATE FUNCTION biomero_stage_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('biomero_stage', NEW.id);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER biomero_stage_submissions_notify
    AFTER INSERT OR UPDATE OF next_attempt_at, waiting_for ON biomero_stage_submissions
    FOR EACH ROW EXECUTE FUNCTION biomero_stage_notify();
