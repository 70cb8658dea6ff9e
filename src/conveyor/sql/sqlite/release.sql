-- Hand a job back without counting the attempt, claimable again :delay seconds from now.
-- A job back in the queue takes the key its task's limits now need ('' when they came
-- after it was enqueued), so the plain claim never runs it past them.
UPDATE conveyor_jobs
SET limit_key = coalesce(limit_key, (SELECT '' FROM conveyor_tasks AS t
                                     WHERE t.name = conveyor_jobs.task
                                       AND (t.rate_count IS NOT NULL
                                            OR t.concurrency IS NOT NULL))),
    state = CASE WHEN cancel_requested THEN 'cancelled'
                 WHEN :delay > 0 THEN 'scheduled'
                 ELSE 'queued' END,
    finished_at = CASE WHEN cancel_requested THEN :now END,
    run_at = max(run_at, :now + :delay),
    attempts = max(attempts - 1, 0), started_at = NULL,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = :id AND lease_token = :token AND state = 'running'
