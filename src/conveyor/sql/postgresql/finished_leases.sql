-- Of the leases a heartbeat could not renew, those whose attempt ended (acked by this worker
-- meanwhile) rather than being taken away.
SELECT j.id FROM conveyor_jobs AS j
JOIN unnest(:ids::bigint[], :tokens::bigint[]) AS held (id, token)
  ON j.id = held.id AND j.lease_token = held.token
WHERE j.state != 'running'
