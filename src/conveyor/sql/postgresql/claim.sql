-- One statement: pick the best queued jobs of each queue (locked rows are skipped, so
-- workers never wait on each other), then set state, owner, lease and a fresh token. A paused
-- queue is left out before its jobs are read: the pause is a condition of the claim.
WITH picked AS (
    SELECT c.id
    FROM unnest(:queues::text[]) AS q (name)
    CROSS JOIN LATERAL (
        SELECT id, priority, run_at FROM conveyor_jobs
        WHERE state = 'queued' AND limit_key IS NULL AND queue = q.name
        ORDER BY priority, run_at, id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ) AS c
    WHERE NOT EXISTS (SELECT 1 FROM conveyor_queues AS p WHERE p.name = q.name AND p.paused)
    ORDER BY c.priority, c.run_at, c.id
    LIMIT :limit
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
          j.soft_timeout, j.followers
