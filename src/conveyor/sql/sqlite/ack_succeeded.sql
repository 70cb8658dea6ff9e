-- Run once per job of a batch (SQLite: a prepared statement in this process is cheaper
-- than decoding an array); the batch yields the ids of the rows it changed. Fenced by the
-- lease token, which stays (see ack_failed). A job with followers (children, callbacks) is
-- acked by ack_followed, which releases them: one that gained them since its claim is left
-- running here, and the store acks it again that way.
UPDATE conveyor_jobs
SET state = 'succeeded', result = :result, error = NULL, finished_at = :now,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = :id AND lease_token = :token AND state = 'running' AND NOT followers
