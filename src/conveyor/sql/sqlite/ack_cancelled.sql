-- One statement for every cancel of a round: :batch is a JSON array of objects (see
-- ack_succeeded). Fenced by the lease token.
UPDATE conveyor_jobs AS j
SET state = 'cancelled', error = o.error, finished_at = :now,
    lease_owner = NULL, lease_expires_at = NULL
FROM (SELECT json_extract(value, '$.id') AS id,
             json_extract(value, '$.token') AS token,
             json_extract(value, '$.error') AS error
      FROM json_each(:batch)) AS o
WHERE j.id = o.id AND j.lease_token = o.token AND j.state = 'running'
RETURNING id, state, followers
