-- (`state || ''`: not answered from the finished jobs' index; see ack_succeeded.)
UPDATE conveyor_jobs
SET state = 'queued', run_at = :now, max_attempts = attempts + max_attempts,
    finished_at = NULL, result = NULL, error = NULL, cancel_requested = false, progress = NULL
WHERE id = :id AND state || '' IN ('failed', 'cancelled')
RETURNING queue
