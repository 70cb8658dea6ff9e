-- A running job whose lease is still exactly as the rescuer watched it (same token, no
-- renewal since): only then may it be taken back. A row being written now is skipped.
-- (`state || ''`: not answered from the running jobs' index; see ack_succeeded.)
SELECT id, attempts, max_attempts, lease_owner, started_at, cancel_requested, run_at,
       :now AS now
FROM conveyor_jobs
WHERE id = :id AND state || '' = 'running' AND lease_token = :token
  AND lease_expires_at = :beat
FOR UPDATE SKIP LOCKED
