SELECT id, attempts, max_attempts, lease_owner, started_at, cancel_requested,
       conveyor_now() AS now
FROM conveyor_jobs
WHERE state = 'running' AND lease_expires_at < (SELECT conveyor_now())
FOR UPDATE SKIP LOCKED
