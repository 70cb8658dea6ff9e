-- claim.sql for a worker with LIFO queues (:lifo, one flag per queue). A LIFO queue's
-- candidates are the newest jobs of its best priority, read backwards along the partial index
-- conveyor_jobs_queued (never a sort of the queue); a round takes at most that priority's
-- jobs, and the dispatcher claims again at once while a round claims something.
WITH wanted AS (
    SELECT q.name, q.lifo FROM unnest(:queues::text[], :lifo::boolean[]) AS q (name, lifo)
    WHERE NOT EXISTS (SELECT 1 FROM conveyor_queues AS p WHERE p.name = q.name AND p.paused)
), candidates AS (
    SELECT c.id, c.priority, c.run_at
    FROM wanted AS q
    CROSS JOIN LATERAL (
        SELECT id, priority, run_at FROM conveyor_jobs
        WHERE state = 'queued' AND limit_key IS NULL AND queue = q.name
        ORDER BY priority, run_at, id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ) AS c
    WHERE NOT q.lifo
    UNION ALL
    SELECT c.id, c.priority, c.run_at
    FROM wanted AS q
    CROSS JOIN LATERAL (
        SELECT id, priority, run_at FROM conveyor_jobs
        WHERE state = 'queued' AND limit_key IS NULL AND queue = q.name
          AND priority = (SELECT min(priority) FROM conveyor_jobs
                          WHERE state = 'queued' AND limit_key IS NULL AND queue = q.name)
        ORDER BY run_at DESC, id DESC
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ) AS c
    WHERE q.lifo
), picked AS (
    SELECT id FROM candidates ORDER BY priority, run_at, id LIMIT :limit
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
