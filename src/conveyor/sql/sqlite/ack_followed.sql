-- A job with followers succeeded (fenced by its lease token), once per job of a batch; the
-- store releases their followers next, in this transaction.
UPDATE conveyor_jobs
SET state = 'succeeded', result = :result, error = NULL, finished_at = :now,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = :id AND lease_token = :token AND state = 'running'
RETURNING id, state, result, error, callbacks
