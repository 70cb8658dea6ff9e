-- Back to the queue: at :run_at exactly when given (a rescued job keeps its place), else
-- :delay seconds (the backoff the worker decided) from the database's clock. A cancel
-- requested while the attempt ran wins over the retry. Fenced by the lease token.
-- A job back in the queue takes the key its task's limits now need ('' when they came
-- after it was enqueued), so the plain claim never runs it past them.
UPDATE conveyor_jobs
SET limit_key = coalesce(limit_key, (SELECT '' FROM conveyor_tasks AS t
                                     WHERE t.name = conveyor_jobs.task
                                       AND (t.rate_count IS NOT NULL
                                            OR t.concurrency IS NOT NULL))),
    state       = CASE WHEN cancel_requested THEN 'cancelled'
                       WHEN coalesce(CAST(:run_at AS DOUBLE PRECISION), :now + :delay) > :now
                       THEN 'scheduled'
                       ELSE 'queued' END,
    finished_at = CASE WHEN cancel_requested THEN :now END,
    run_at = coalesce(CAST(:run_at AS DOUBLE PRECISION), :now + :delay), error = :error,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = :id AND lease_token = :token AND state = 'running'
RETURNING id
