-- One statement for every retry of a round, its columns as arrays (see ack_succeeded).
-- Fenced by the lease token, as ack_retry.sql is for one job.
UPDATE conveyor_jobs AS j
SET state       = CASE WHEN j.cancel_requested THEN 'cancelled'
                       WHEN o.delay > 0 THEN 'scheduled'
                       ELSE 'queued' END,
    finished_at = CASE WHEN j.cancel_requested THEN :now END,
    run_at = :now + o.delay, error = o.error,
    lease_owner = NULL, lease_expires_at = NULL
FROM unnest(:id::bigint[], :token::bigint[], :error::text[], :delay::double precision[])
     AS o (id, token, error, delay)
WHERE j.id = o.id AND j.lease_token = o.token AND j.state = 'running'
RETURNING j.id, j.state, j.followers
