-- A weighted claim (weighted fair queuing): each queue's candidates, in the queue's own order
-- (FIFO, or LIFO as in claim_lifo), get a share: the queue's share so far (:start) plus the
-- candidate's rank over the queue's weight; the smallest shares are taken.
WITH wanted AS (
    SELECT q.name, q.lifo, q.start, q.weight
    FROM unnest(:queues::text[], :lifo::boolean[], :start::float8[], :weight::float8[])
         AS q (name, lifo, start, weight)
    WHERE NOT EXISTS (SELECT 1 FROM conveyor_queues AS p WHERE p.name = q.name AND p.paused)
), candidates AS (
    SELECT c.id, q.start + c.rank / q.weight AS share
    FROM wanted AS q
    CROSS JOIN LATERAL (
        SELECT f.id, row_number() OVER (ORDER BY f.priority, f.run_at, f.id) AS rank
        FROM (
            SELECT id, priority, run_at FROM conveyor_jobs
            WHERE state = 'queued' AND limit_key IS NULL AND queue = q.name
            ORDER BY priority, run_at, id
            LIMIT :limit
            FOR UPDATE SKIP LOCKED
        ) AS f
    ) AS c
    WHERE NOT q.lifo
    UNION ALL
    SELECT c.id, q.start + c.rank / q.weight AS share
    FROM wanted AS q
    CROSS JOIN LATERAL (
        SELECT l.id, row_number() OVER (ORDER BY l.run_at DESC, l.id DESC) AS rank
        FROM (
            SELECT id, run_at FROM conveyor_jobs
            WHERE state = 'queued' AND limit_key IS NULL AND queue = q.name
              AND priority = (SELECT min(priority) FROM conveyor_jobs
                              WHERE state = 'queued' AND limit_key IS NULL AND queue = q.name)
            ORDER BY run_at DESC, id DESC
            LIMIT :limit
            FOR UPDATE SKIP LOCKED
        ) AS l
    ) AS c
    WHERE q.lifo
), picked AS (
    SELECT id FROM candidates ORDER BY share, id LIMIT :limit
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
