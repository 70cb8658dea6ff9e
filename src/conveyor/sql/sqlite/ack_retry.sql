-- Back to the queue: at run_at exactly when given (a rescued job keeps its place), else
-- delay seconds (the backoff the worker decided) from the database's clock. A cancel
-- requested while the attempt ran wins over the retry. Fenced by the lease token.
-- Every retry of a round in one statement: `:batch` is a JSON array of objects (see
-- ack_succeeded).
UPDATE conveyor_jobs AS j
SET state       = CASE WHEN j.cancel_requested THEN 'cancelled'
                       WHEN coalesce(o.run_at, :now + o.delay) > :now THEN 'scheduled'
                       ELSE 'queued' END,
    finished_at = CASE WHEN j.cancel_requested THEN :now END,
    run_at = coalesce(o.run_at, :now + o.delay), error = o.error,
    lease_owner = NULL, lease_expires_at = NULL
FROM (SELECT json_extract(value, '$.id') AS id,
             json_extract(value, '$.token') AS token,
             json_extract(value, '$.error') AS error,
             json_extract(value, '$.delay') AS delay,
             json_extract(value, '$.run_at') AS run_at
      FROM json_each(:batch)) AS o
WHERE j.id = o.id AND j.lease_token = o.token AND j.state = 'running'
RETURNING id, state, followers
