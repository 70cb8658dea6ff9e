-- The lost attempt counts: a job that crashes its worker every time must end, not loop.
-- run_at is kept, so the job goes back to its place in the queue, not to the end.
UPDATE conveyor_jobs
SET state = CASE WHEN cancel_requested THEN 'cancelled'
                 WHEN attempts >= max_attempts THEN 'failed'
                 ELSE 'queued' END,
    finished_at = CASE WHEN cancel_requested OR attempts >= max_attempts THEN :now END,
    error = :error,
    lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
WHERE id = :id AND state = 'running' AND lease_token = :token
