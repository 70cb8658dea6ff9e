-- Renew every lease a worker holds in one statement: a worker starved of CPU pays for one
-- statement, not one per job. :ids and :tokens are parallel lists.
UPDATE conveyor_jobs AS j SET lease_expires_at = :now + :lease
FROM (SELECT i.value AS id, t.value AS token
      FROM json_each(:ids) AS i JOIN json_each(:tokens) AS t ON t.key = i.key) AS held
WHERE j.id = held.id AND j.lease_token = held.token AND j.state = 'running'
RETURNING id, cancel_requested
