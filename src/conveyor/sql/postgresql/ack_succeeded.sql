-- Run once per batch, its columns as arrays (PostgreSQL: one statement, not one per job).
-- Fenced by the lease token, which stays (see ack_failed). A job with followers (children,
-- callbacks) is acked by ack_followed, which releases them: one that gained them since its
-- claim is left running here, and the store acks it again that way.
UPDATE conveyor_jobs AS j
SET state = 'succeeded', result = done.result, error = NULL, finished_at = :now,
    lease_owner = NULL, lease_expires_at = NULL
FROM unnest(:id::bigint[], :token::bigint[], :result::text[]) AS done (id, token, result)
WHERE j.id = done.id AND j.lease_token = done.token AND j.state = 'running'
  AND NOT j.followers
RETURNING j.id
