-- One statement for every snooze of a round, its columns as arrays (see ack_succeeded).
-- Fenced by the lease token.
-- (`state || ''`: not answered from the running jobs' index; see ack_succeeded.)
UPDATE conveyor_jobs AS j
SET state       = CASE WHEN j.cancel_requested THEN 'cancelled'
                       WHEN o.delay > 0 THEN 'scheduled'
                       ELSE 'queued' END,
    finished_at = CASE WHEN j.cancel_requested THEN :now END,
    attempts    = CASE WHEN j.cancel_requested THEN j.attempts ELSE j.attempts - 1 END,
    run_at = :now + o.delay,
    lease_owner = NULL, lease_expires_at = NULL
FROM unnest(:id::bigint[], :token::bigint[], :delay::double precision[])
     AS o (id, token, delay)
WHERE j.id = o.id AND j.lease_token = o.token AND j.state || '' = 'running'
RETURNING j.id, j.state, j.followers
