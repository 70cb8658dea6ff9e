INSERT INTO conveyor_attempts
    (job_id, attempt, worker, started_at, finished_at, outcome, error_type, error_message,
     traceback)
VALUES (%(job_id)s, %(attempt)s, %(worker)s, %(started_at)s, %(finished_at)s, %(outcome)s,
        %(error_type)s, %(error_message)s, %(traceback)s)
ON CONFLICT (job_id, attempt) DO UPDATE
SET worker = excluded.worker, started_at = excluded.started_at,
    finished_at = excluded.finished_at, outcome = excluded.outcome,
    error_type = excluded.error_type, error_message = excluded.error_message,
    traceback = excluded.traceback
