-- A snooze: back to the queue :delay seconds from the database's clock, and the attempt given
-- back (attempts - 1), so max_attempts is not consumed. The job's error stays that of its
-- last failure. A cancel requested while the attempt ran wins. Fenced by the lease token.
UPDATE conveyor_jobs
SET state       = CASE WHEN cancel_requested THEN 'cancelled'
                       WHEN :delay > 0 THEN 'scheduled'
                       ELSE 'queued' END,
    finished_at = CASE WHEN cancel_requested THEN :now END,
    attempts    = CASE WHEN cancel_requested THEN attempts ELSE attempts - 1 END,
    run_at = :now + :delay,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = :id AND lease_token = :token AND state = 'running'
RETURNING id, state, followers
