-- Run once per batch of (queue, task, limit key), its columns as arrays: each key's best
-- :limit jobs, as many as its limits allow now. Returns the key, so the caller counts what
-- each key started. (:owner and :lease are arrays of one repeated value, as a batch is.)
WITH picked AS (
    SELECT c.id
    FROM unnest(:queue::text[], :task::text[], :key::text[], :limit::int[])
        AS w (queue, task, key, n)
    CROSS JOIN LATERAL (
        SELECT id FROM conveyor_jobs
        WHERE state = 'queued' AND limit_key IS NOT NULL
          AND queue = w.queue AND task = w.task AND limit_key = w.key
        ORDER BY priority, run_at, id
        LIMIT w.n
        FOR UPDATE SKIP LOCKED
    ) AS c
), clock AS (SELECT :now AS now)
UPDATE conveyor_jobs AS j
SET state            = 'running',
    attempts         = j.attempts + 1,
    worker           = (:owner::text[])[1],
    lease_owner      = (:owner::text[])[1],
    lease_token      = nextval('conveyor_lease_tokens'),
    lease_expires_at = clock.now + (:lease::float8[])[1],
    started_at       = clock.now
FROM picked, clock
WHERE j.id = picked.id
RETURNING j.id, j.task, j.queue, j.priority, j.args, j.kwargs, j.attempts, j.max_attempts,
          j.lease_token, j.run_at, j.enqueued_at, j.cancel_requested, j.backoff, j.timeout,
          j.soft_timeout, j.limit_key, j.followers
