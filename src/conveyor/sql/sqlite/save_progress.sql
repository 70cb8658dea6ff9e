-- One statement per batch: :batch is a JSON array of {"id", "token", "progress"} objects
-- (see ack_succeeded). Fenced by the lease token.
UPDATE conveyor_jobs AS j SET progress = done.progress
FROM (SELECT json_extract(value, '$.id') AS id, json_extract(value, '$.token') AS token,
             json_extract(value, '$.progress') AS progress
      FROM json_each(:batch)) AS done
WHERE j.id = done.id AND j.lease_token = done.token AND j.state = 'running'
