-- Every running job's lease as it stands. Locking proves the rows were writable then
-- (lease_watch.py); a row locked by someone else is skipped: not seen this round.
-- lease_expires_at is the beat: every renewal changes it; it is never compared with a clock.
SELECT id, lease_token, lease_expires_at FROM conveyor_jobs WHERE state = 'running'
FOR UPDATE SKIP LOCKED
