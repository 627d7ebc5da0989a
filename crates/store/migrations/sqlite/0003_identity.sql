-- Facts about the queue itself; `queue_id` names this queue so a daemon can tell when the
-- database it opens is not the one it used before (a truncated or replaced file).
CREATE TABLE biomero_stage_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
