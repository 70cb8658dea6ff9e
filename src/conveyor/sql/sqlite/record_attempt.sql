INSERT OR REPLACE INTO conveyor_attempts
    (job_id, attempt, worker, started_at, finished_at, outcome, error_type, error_message, traceback)
VALUES
    (:job_id, :attempt, :worker, :started_at, :finished_at, :outcome,
     :error_type, :error_message, :traceback)
