-- Positional parameters, for the hottest statement: result, finished_at, id, token.
UPDATE conveyor_jobs
SET state = 'succeeded', result = ?, error = NULL, finished_at = ?,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = ? AND lease_token = ? AND state = 'running'
