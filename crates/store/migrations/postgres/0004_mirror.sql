-- How much of each submission's history has been written to BIOMERO's event store
-- (its WorkflowRun and Tasks): the last event `seq` written. Histories only grow, so
-- a submission whose last event is beyond `seq` has events waiting.
CREATE TABLE biomero_stage_mirror (
    submission_id TEXT PRIMARY KEY REFERENCES biomero_stage_submissions (id),
    seq           INTEGER NOT NULL
);
