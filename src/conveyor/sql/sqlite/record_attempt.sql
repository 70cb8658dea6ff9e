-- An attempt that did not succeed (a success is kept on the job row). Written again with the
-- same values when a commit whose fate was unknown is retried.
INSERT INTO conveyor_attempts
    (job_id, attempt, worker, started_at, finished_at, outcome, error_type, error_message,
     traceback)
VALUES (:job_id, :attempt, :worker, :started_at, :finished_at, :outcome,
        :error_type, :error_message, :traceback)
ON CONFLICT (job_id, attempt) DO UPDATE
SET worker = excluded.worker, started_at = excluded.started_at,
    finished_at = excluded.finished_at, outcome = excluded.outcome,
    error_type = excluded.error_type, error_message = excluded.error_message,
    traceback = excluded.traceback
