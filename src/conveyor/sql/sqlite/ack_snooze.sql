-- One statement for every snooze of a round: :batch is a JSON array of objects (see
-- ack_succeeded). Fenced by the lease token.
UPDATE conveyor_jobs AS j
SET state       = CASE WHEN j.cancel_requested THEN 'cancelled'
                       WHEN o.delay > 0 THEN 'scheduled'
                       ELSE 'queued' END,
    finished_at = CASE WHEN j.cancel_requested THEN :now END,
    attempts    = CASE WHEN j.cancel_requested THEN j.attempts ELSE j.attempts - 1 END,
    run_at = :now + o.delay,
    lease_owner = NULL, lease_expires_at = NULL
FROM (SELECT json_extract(value, '$.id') AS id,
             json_extract(value, '$.token') AS token,
             json_extract(value, '$.delay') AS delay
      FROM json_each(:batch)) AS o
WHERE j.id = o.id AND j.lease_token = o.token AND j.state = 'running'
RETURNING id, state, followers
