-- Every running job's lease as it stands, after lock_as_writer: a rescuer looks only when a
-- heartbeat could write. Share-locking the rows does not make rescuers of different workers
-- skip each other's rows; a row being written right now is skipped: not seen this round.
-- lease_expires_at is the beat: every renewal changes it; it is never compared with a clock.
SELECT id, lease_token, lease_expires_at FROM conveyor_jobs WHERE state = 'running'
FOR SHARE SKIP LOCKED
