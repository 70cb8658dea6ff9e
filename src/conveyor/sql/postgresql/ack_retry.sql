-- Back to the queue: at :run_at exactly when given (a rescued job keeps its place), else
-- :delay seconds (the backoff the worker decided) from the database's clock. A cancel
-- requested while the attempt ran wins over the retry. Fenced by the lease token.
UPDATE conveyor_jobs
SET state       = CASE WHEN cancel_requested THEN 'cancelled'
                       WHEN coalesce(CAST(:run_at AS DOUBLE PRECISION), :now + :delay) > :now
                       THEN 'scheduled'
                       ELSE 'queued' END,
    finished_at = CASE WHEN cancel_requested THEN :now END,
    run_at = coalesce(CAST(:run_at AS DOUBLE PRECISION), :now + :delay), error = :error,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = :id AND lease_token = :token AND state = 'running'
RETURNING id, state, followers
