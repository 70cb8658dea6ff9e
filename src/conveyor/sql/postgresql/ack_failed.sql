-- One statement for every failure of a round, its columns as arrays (see ack_succeeded).
-- Fenced by the lease token.
-- (`state || ''`: not answered from the running jobs' index; see ack_succeeded.)
UPDATE conveyor_jobs AS j
SET state = 'failed', error = o.error, finished_at = :now,
    lease_owner = NULL, lease_expires_at = NULL
FROM unnest(:id::bigint[], :token::bigint[], :error::text[])
     AS o (id, token, error)
WHERE j.id = o.id AND j.lease_token = o.token AND j.state || '' = 'running'
RETURNING j.id, j.state, j.followers
