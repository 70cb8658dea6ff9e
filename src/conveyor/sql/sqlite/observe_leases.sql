-- Every running job's lease as it stands, read inside a write transaction: seeing a row
-- proves it was writable then (lease_watch.py). lease_expires_at is the beat: every renewal
-- changes it; it is never compared with a clock.
SELECT id, lease_token, lease_expires_at FROM conveyor_jobs WHERE state = 'running'
