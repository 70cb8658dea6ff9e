-- Run once per batch, its columns as arrays. Fenced by the lease token.
-- (`state || ''`: not answered from the running jobs' index; see ack_succeeded.)
UPDATE conveyor_jobs AS j SET progress = p.progress
FROM unnest(:id::bigint[], :token::bigint[], :progress::text[]) AS p (id, token, progress)
WHERE j.id = p.id AND j.lease_token = p.token AND j.state || '' = 'running'
