-- Hand a job back untouched: the attempt it was claimed for does not count.
UPDATE conveyor_jobs
SET state = 'queued', attempts = max(attempts - 1, 0), started_at = NULL,
    lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
WHERE id = :id AND lease_token = :token AND state = 'running'
