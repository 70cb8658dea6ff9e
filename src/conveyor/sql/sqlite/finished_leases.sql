-- Of the leases a heartbeat could not renew, those whose attempt ended (acked by this worker
-- meanwhile) rather than being taken away.
SELECT j.id FROM conveyor_jobs AS j
JOIN (SELECT i.value AS id, t.value AS token
      FROM json_each(:ids) AS i JOIN json_each(:tokens) AS t ON t.key = i.key) AS held
  ON j.id = held.id AND j.lease_token = held.token
WHERE j.state != 'running'
