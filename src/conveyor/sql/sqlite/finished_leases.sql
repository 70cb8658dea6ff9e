-- Of leases a renewal did not find running, those this worker finished itself (an ack keeps
-- its token, and so does a handback): the heartbeat raced the outcome; the lease was not lost.
SELECT id FROM conveyor_jobs
WHERE id IN (SELECT value FROM json_each(:ids)) AND state != 'running'
  AND lease_token = json_extract(:tokens, '$."' || id || '"')
