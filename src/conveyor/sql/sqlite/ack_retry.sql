-- A cancel requested while the attempt ran wins over the retry.
UPDATE conveyor_jobs
SET state       = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'scheduled' END,
    finished_at = CASE WHEN cancel_requested THEN :finished_at END,
    run_at = :run_at, error = :error,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = :id AND lease_token = :token AND state = 'running'
