UPDATE conveyor_jobs
SET state = 'failed', error = :error, finished_at = :finished_at,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = :id AND lease_token = :token AND state = 'running'
