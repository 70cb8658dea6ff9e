-- The limited jobs of one queue, one row per (task, limit key) after the given one in key
-- order, at most :groups: each key's head (its best job) with what its limits need, the
-- task's limits, the key's rate state and how many of its jobs run. One index seek per key
-- along conveyor_jobs_limited (a loose index scan), however many jobs each key holds. A
-- paused queue gives nothing.
WITH RECURSIVE heads (id, n) AS (
    SELECT (SELECT id FROM conveyor_jobs
            WHERE state = 'queued' AND limit_key IS NOT NULL AND queue = :queue
              AND (task, limit_key) > (:after_task, :after_key)
            ORDER BY task, limit_key, priority, run_at, id
            LIMIT 1), 1
    UNION ALL
    SELECT (SELECT j.id FROM conveyor_jobs AS j
            WHERE j.state = 'queued' AND j.limit_key IS NOT NULL AND j.queue = :queue
              AND (j.task, j.limit_key) > (h.task, h.limit_key)
            ORDER BY j.task, j.limit_key, j.priority, j.run_at, j.id
            LIMIT 1), heads.n + 1
    FROM heads JOIN conveyor_jobs AS h ON h.id = heads.id
    WHERE heads.n < :groups
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
