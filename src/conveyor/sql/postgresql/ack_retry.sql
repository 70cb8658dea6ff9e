-- Back to the queue: at run_at exactly when given (a rescued job keeps its place), else
-- delay seconds (the backoff the worker decided) from the database's clock. A cancel
-- requested while the attempt ran wins over the retry. Fenced by the lease token.
-- Every retry of a round in one statement: its columns as arrays (see ack_succeeded).
-- (`state || ''`: not answered from the running jobs' index; see ack_succeeded.)
UPDATE conveyor_jobs AS j
SET state       = CASE WHEN j.cancel_requested THEN 'cancelled'
                       WHEN coalesce(o.run_at, :now + o.delay) > :now THEN 'scheduled'
                       ELSE 'queued' END,
    finished_at = CASE WHEN j.cancel_requested THEN :now END,
    run_at = coalesce(o.run_at, :now + o.delay), error = o.error,
    lease_owner = NULL, lease_expires_at = NULL
FROM unnest(:id::bigint[], :token::bigint[], :error::text[], :delay::double precision[],
             :run_at::double precision[])
     AS o (id, token, error, delay, run_at)
WHERE j.id = o.id AND j.lease_token = o.token AND j.state || '' = 'running'
RETURNING j.id, j.state, j.followers
