-- Renew every lease a worker holds in one statement: a worker starved of CPU pays for one
-- statement, not one per job. :ids and :tokens are parallel lists.
-- (`state || ''`: not answered from the running jobs' index; see ack_succeeded.)
UPDATE conveyor_jobs AS j SET lease_expires_at = :now + :lease
FROM unnest(:ids::bigint[], :tokens::bigint[]) AS held (id, token)
WHERE j.id = held.id AND j.lease_token = held.token AND j.state || '' = 'running'
RETURNING j.id, j.cancel_requested
