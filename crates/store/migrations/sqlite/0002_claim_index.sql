-- When a submission may next be claimed (ms since the epoch): its
-- next_attempt_at while nobody holds it, the later of that and its lease expiry
-- while a daemon does. Claims scan it in (claimable_at, created_at) order.
ALTER TABLE biomero_stage_submissions ADD COLUMN claimable_at INTEGER NOT NULL DEFAULT 0;
UPDATE biomero_stage_submissions SET claimable_at = MAX(next_attempt_at,
    COALESCE((SELECT l.expires_at FROM biomero_stage_leases l WHERE l.submission_id = biomero_stage_submissions.id), 0));
DROP INDEX IF EXISTS biomero_stage_submissions_runnable;
CREATE INDEX biomero_stage_submissions_claim_order ON biomero_stage_submissions (claimable_at, created_at)
    WHERE done = 0 AND waiting_for IS NULL;
