-- The worker decided the backoff (:delay, seconds); the database's clock places it. A cancel
-- requested while the attempt ran wins over the retry. Fenced by the lease token.
UPDATE conveyor_jobs
SET state       = CASE WHEN cancel_requested THEN 'cancelled'
                       WHEN :delay > 0 THEN 'scheduled'
                       ELSE 'queued' END,
    finished_at = CASE WHEN cancel_requested THEN :now END,
    run_at = :now + :delay, error = :error,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = :id AND lease_token = :token AND state = 'running'
RETURNING id
