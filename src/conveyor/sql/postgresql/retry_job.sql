-- A job back in the queue takes the key its task's limits now need ('' when they came
-- after it was enqueued), so the plain claim never runs it past them.
UPDATE conveyor_jobs
SET limit_key = coalesce(limit_key, (SELECT '' FROM conveyor_tasks AS t
                                     WHERE t.name = conveyor_jobs.task
                                       AND (t.rate_count IS NOT NULL
                                            OR t.concurrency IS NOT NULL))),
    state = 'queued', run_at = :now, max_attempts = attempts + max_attempts,
    finished_at = NULL, result = NULL, error = NULL, cancel_requested = false, progress = NULL
WHERE id = :id AND state IN ('failed', 'cancelled')
RETURNING queue
