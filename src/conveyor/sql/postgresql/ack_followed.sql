-- Jobs with followers succeeded (fenced by their lease tokens), one statement for the batch;
-- the store releases their followers next, in this transaction.
-- (`state || ''`: not answered from the running jobs' index; see ack_succeeded.)
UPDATE conveyor_jobs AS j
SET state = 'succeeded', result = done.result, error = NULL, finished_at = :now,
    lease_owner = NULL, lease_expires_at = NULL
FROM unnest(:id::bigint[], :token::bigint[], :result::text[]) AS done (id, token, result)
WHERE j.id = done.id AND j.lease_token = done.token AND j.state || '' = 'running'
RETURNING j.id, j.state, j.result, j.error, j.callbacks
