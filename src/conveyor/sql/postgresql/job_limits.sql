-- What may hold one job back: its limit key with its task's limits, the key's rate state and
-- running jobs (counted along conveyor_jobs_running_limited), its queue's pause and
-- concurrency limit with the queue's running jobs (counted only for a capped queue).
SELECT j.id, j.task, j.queue, j.limit_key,
       t.rate_count, t.rate_per, t.rate_burst, t.concurrency, r.tat,
       CASE WHEN j.limit_key IS NULL THEN 0 ELSE
           (SELECT count(*) FROM conveyor_jobs AS x
            WHERE x.state = 'running' AND x.limit_key IS NOT NULL
              AND x.task = j.task AND x.limit_key = j.limit_key) END AS running,
       coalesce(q.paused, false) AS queue_paused,
       q.concurrency AS queue_concurrency,
       CASE WHEN q.concurrency IS NULL THEN 0 ELSE
           (SELECT count(*) FROM conveyor_jobs AS y
            WHERE y.state = 'running' AND y.queue = j.queue) END AS queue_running,
       :now AS now
FROM conveyor_jobs AS j
LEFT JOIN conveyor_tasks AS t ON t.name = j.task AND j.limit_key IS NOT NULL
LEFT JOIN conveyor_rate_limits AS r ON r.task = j.task AND r.key = j.limit_key
LEFT JOIN conveyor_queues AS q ON q.name = j.queue
WHERE j.id = :id
