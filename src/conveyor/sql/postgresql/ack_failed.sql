-- Fenced by the lease token. The lease token stays, so a heartbeat racing this ack finds the
-- job ended rather than taken; the attempt is recorded when a row comes back.
UPDATE conveyor_jobs
SET state = 'failed', error = :error, finished_at = :now,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = :id AND lease_token = :token AND state = 'running'
RETURNING id, state, followers
