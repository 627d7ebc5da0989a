-- When a submission may next be claimed: its next_attempt_at while nobody holds
-- it, the later of that and its lease expiry while a daemon does. Claims scan it
-- in (claimable_at, created_at) order with LIMIT 1; the partial index in that
-- order lets PostgreSQL stop at the first row instead of sorting every candidate
-- and never meets finished, waiting or held rows.
ALTER TABLE biomero_stage_submissions ADD COLUMN claimable_at TIMESTAMPTZ NOT NULL DEFAULT now();
UPDATE biomero_stage_submissions s SET claimable_at = GREATEST(s.next_attempt_at,
    (SELECT l.expires_at FROM biomero_stage_leases l WHERE l.submission_id = s.id));
DROP INDEX IF EXISTS biomero_stage_submissions_runnable;
CREATE INDEX biomero_stage_submissions_claim_order ON biomero_stage_submissions (claimable_at, created_at)
    WHERE NOT done AND waiting_for IS NULL;
