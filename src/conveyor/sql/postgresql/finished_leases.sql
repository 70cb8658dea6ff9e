-- Of leases a renewal did not find running, those this worker finished itself (an ack keeps
-- its token, and so does a handback): the heartbeat raced the outcome; the lease was not lost.
SELECT j.id FROM conveyor_jobs AS j
JOIN unnest(%(ids)s::bigint[], %(tokens)s::bigint[]) AS held (id, token)
  ON j.id = held.id AND j.lease_token = held.token
WHERE j.state != 'running'
