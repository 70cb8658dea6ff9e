-- Hand a job back untouched: the attempt it was claimed for does not count (the token stays,
-- so a heartbeat racing the handback knows the job was given up, not taken). A job asked to
-- cancel meanwhile ends cancelled instead. :not_before keeps a job whose thread may still be
-- finishing from being claimed again before this process has exited.
UPDATE conveyor_jobs
SET state = CASE WHEN cancel_requested THEN 'cancelled'
                 WHEN :not_before > :now THEN 'scheduled'
                 ELSE 'queued' END,
    finished_at = CASE WHEN cancel_requested THEN :now END,
    run_at = max(run_at, :not_before),
    attempts = max(attempts - 1, 0), started_at = NULL,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = :id AND lease_token = :token AND state = 'running'
