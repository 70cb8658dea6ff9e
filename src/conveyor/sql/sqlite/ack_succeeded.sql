-- One statement per batch: :batch is a JSON array of {"id", "token", "result"} objects (sent
-- by the dialect from the store's columns). One statement, not one per job: the worker's
-- process waits for its GIL once per statement, and holds the write lock meanwhile.
-- Fenced by the lease token, which stays (see ack_failed). A job with followers (children,
-- callbacks) is acked by ack_followed, which releases them: one that gained them since its
-- claim is left running here, and the store acks it again that way.
UPDATE conveyor_jobs AS j
SET state = 'succeeded', result = done.result, error = NULL, finished_at = :now,
    lease_owner = NULL, lease_expires_at = NULL
FROM (SELECT json_extract(value, '$.id') AS id, json_extract(value, '$.token') AS token,
             json_extract(value, '$.result') AS result
      FROM json_each(:batch)) AS done
WHERE j.id = done.id AND j.lease_token = done.token AND j.state = 'running'
  AND NOT j.followers
RETURNING id
