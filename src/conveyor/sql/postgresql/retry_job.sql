-- Run a finished (failed or cancelled) job again with a fresh set of attempts; the attempt
-- history is kept, numbering goes on.
UPDATE conveyor_jobs
SET state = 'queued', run_at = conveyor_now(), max_attempts = attempts + max_attempts,
    finished_at = NULL, result = NULL, error = NULL, cancel_requested = false, progress = NULL
WHERE id = %(id)s AND state IN ('failed', 'cancelled')
RETURNING queue
