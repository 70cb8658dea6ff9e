-- An attempt that did not succeed (a success is kept on the job row), recorded only if the
-- outcome's write just matched: the job has ended under the attempt's lease token. Written
-- again with the same values when a commit whose fate was unknown is retried.
INSERT INTO conveyor_attempts
    (job_id, attempt, worker, started_at, finished_at, outcome, error_type, error_message,
     traceback)
SELECT :job_id, :attempt, :worker, :started_at, :finished_at, :outcome,
       :error_type, :error_message, :traceback
WHERE EXISTS (SELECT 1 FROM conveyor_jobs
              WHERE id = :job_id AND lease_token = :token AND state != 'running')
ON CONFLICT (job_id, attempt) DO UPDATE
SET worker = excluded.worker, started_at = excluded.started_at,
    finished_at = excluded.finished_at, outcome = excluded.outcome,
    error_type = excluded.error_type, error_message = excluded.error_message,
    traceback = excluded.traceback
