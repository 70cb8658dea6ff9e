-- Renew every lease a worker holds in one statement: a worker starved of CPU pays for one
-- statement, not one per job. :ids is a JSON array of job ids, :tokens a JSON object mapping
-- each id to the lease token it was claimed with.
UPDATE conveyor_jobs SET lease_expires_at = :expires
WHERE id IN (SELECT value FROM json_each(:ids)) AND state = 'running'
  AND lease_token = json_extract(:tokens, '$."' || id || '"')
RETURNING id, cancel_requested
