-- The worker decided the backoff; the database's clock places it. A cancel requested while
-- the attempt ran wins over the retry.
UPDATE conveyor_jobs
SET state       = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'scheduled' END,
    finished_at = CASE WHEN cancel_requested THEN conveyor_now() END,
    run_at = conveyor_now() + %(delay)s, error = %(error)s,
    lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
WHERE id = %(id)s AND lease_token = %(token)s AND state = 'running'
