-- Fenced by the lease token; the attempt is recorded only when the ack matched.
WITH acked AS (
    UPDATE conveyor_jobs
    SET state = 'cancelled', error = %(error)s, finished_at = conveyor_now(),
        lease_owner = NULL, lease_expires_at = NULL
    WHERE id = %(id)s AND lease_token = %(token)s AND state = 'running'
    RETURNING id
)
INSERT INTO conveyor_attempts
    (job_id, attempt, worker, started_at, finished_at, outcome, error_type, error_message,
     traceback)
SELECT acked.id, %(attempt)s, %(worker)s, %(started_at)s, %(finished_at)s, %(outcome)s,
       %(error_type)s, %(error_message)s, %(traceback)s
FROM acked
ON CONFLICT (job_id, attempt) DO UPDATE
SET worker = excluded.worker, started_at = excluded.started_at,
    finished_at = excluded.finished_at, outcome = excluded.outcome,
    error_type = excluded.error_type, error_message = excluded.error_message,
    traceback = excluded.traceback
RETURNING job_id
