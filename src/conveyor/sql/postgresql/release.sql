-- Hand a job back untouched: the attempt it was claimed for does not count (the token stays,
-- so a heartbeat racing the handback knows the job was given up, not taken). A job asked to
-- cancel meanwhile ends cancelled instead. %(delay)s keeps a job whose thread may still be
-- finishing from being claimed again before the worker process has exited.
UPDATE conveyor_jobs
SET state = CASE WHEN cancel_requested THEN 'cancelled'
                 WHEN %(delay)s > 0 THEN 'scheduled'
                 ELSE 'queued' END,
    finished_at = CASE WHEN cancel_requested THEN conveyor_now() END,
    run_at = greatest(run_at, conveyor_now() + %(delay)s),
    attempts = greatest(attempts - 1, 0), started_at = NULL,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = %(id)s AND lease_token = %(token)s AND state = 'running'
