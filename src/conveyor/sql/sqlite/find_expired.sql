SELECT id, attempts, max_attempts, lease_owner, started_at, cancel_requested
FROM conveyor_jobs
WHERE state = 'running' AND lease_expires_at < :now
