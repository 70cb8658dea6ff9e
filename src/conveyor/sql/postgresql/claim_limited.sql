-- The best :limit jobs of one (queue, task, limit key), as many as its limits allow now.
WITH picked AS (
    SELECT id FROM conveyor_jobs
    WHERE state = 'queued' AND limit_key IS NOT NULL
      AND queue = :queue AND task = :task AND limit_key = :key
    ORDER BY priority, run_at, id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
), clock AS (SELECT :now AS now)
UPDATE conveyor_jobs AS j
SET state            = 'running',
    attempts         = j.attempts + 1,
    worker           = :owner,
    lease_owner      = :owner,
    lease_token      = nextval('conveyor_lease_tokens'),
    lease_expires_at = clock.now + :lease,
    started_at       = clock.now
FROM picked, clock
WHERE j.id = picked.id
RETURNING j.id, j.task, j.queue, j.priority, j.args, j.kwargs, j.attempts, j.max_attempts,
          j.lease_token, j.run_at, j.enqueued_at, j.cancel_requested, j.backoff, j.timeout,
          j.soft_timeout
