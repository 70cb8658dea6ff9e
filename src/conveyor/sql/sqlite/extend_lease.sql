UPDATE conveyor_jobs SET lease_expires_at = :expires
WHERE id = :id AND lease_token = :token AND state = 'running'
RETURNING id, cancel_requested
