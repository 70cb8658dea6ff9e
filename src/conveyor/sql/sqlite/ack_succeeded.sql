UPDATE conveyor_jobs
SET state = 'succeeded', result = :result, error = NULL, finished_at = :finished_at,
    lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
WHERE id = :id AND lease_token = :token AND state = 'running'
