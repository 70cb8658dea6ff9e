-- Run inside a write transaction: the rescuer sees a lease only when it could write it
-- (a row being written now is skipped).
SELECT id, lease_token, lease_expires_at FROM conveyor_jobs WHERE state = 'running'
FOR SHARE SKIP LOCKED
