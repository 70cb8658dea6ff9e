-- The limited jobs of one queue, one row per (task, limit key) after the given one in key
-- order, at most :groups: each key's head (its best job) with what its limits need, the
-- task's limits, the key's rate state and how many of its jobs run. Two index seeks per key
-- along conveyor_jobs_limited (a loose index scan: the next key of the same task, else the
-- first key of the next task), however many jobs each key holds. A paused queue gives nothing.
WITH RECURSIVE heads (id, task, limit_key, n) AS (
    SELECT NULL::bigint, :after_task::text, :after_key::text, 0
    UNION ALL
    SELECT next.id, next.task, next.limit_key, heads.n + 1
    FROM heads
    CROSS JOIN conveyor_jobs AS next
    WHERE heads.n < :groups
      AND next.id = coalesce(
          (SELECT j.id FROM conveyor_jobs AS j
           WHERE j.state = 'queued' AND j.limit_key IS NOT NULL AND j.queue = :queue
             AND j.task = heads.task AND j.limit_key > heads.limit_key
           ORDER BY j.limit_key, j.priority, j.run_at, j.id
           LIMIT 1),
          (SELECT j.id FROM conveyor_jobs AS j
           WHERE j.state = 'queued' AND j.limit_key IS NOT NULL AND j.queue = :queue
             AND j.task > heads.task
           ORDER BY j.task, j.limit_key, j.priority, j.run_at, j.id
           LIMIT 1))
)
SELECT j.id, j.task, j.limit_key, j.priority, j.run_at,
       t.rate_count, t.rate_per, t.rate_burst, t.concurrency, r.tat,
       (SELECT count(*) FROM conveyor_jobs AS x
        WHERE x.state = 'running' AND x.limit_key IS NOT NULL
          AND x.task = j.task AND x.limit_key = j.limit_key) AS running,
       :now AS now
FROM heads
JOIN conveyor_jobs AS j ON j.id = heads.id
LEFT JOIN conveyor_tasks AS t ON t.name = j.task
LEFT JOIN conveyor_rate_limits AS r ON r.task = j.task AND r.key = j.limit_key
WHERE NOT EXISTS (SELECT 1 FROM conveyor_queues WHERE name = :queue AND paused)
