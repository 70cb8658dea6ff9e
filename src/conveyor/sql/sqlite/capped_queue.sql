-- A queue with a concurrency limit: its limit, how many of its jobs run, and the head of its
-- jobs without limits of their own (no head when it has none, or is paused).
SELECT q.concurrency,
       (SELECT count(*) FROM conveyor_jobs WHERE state = 'running' AND queue = q.name)
           AS running,
       h.id AS head_id,
       :now AS now
FROM conveyor_queues AS q
LEFT JOIN (SELECT id FROM conveyor_jobs
           WHERE state = 'queued' AND limit_key IS NULL AND queue = :queue
           ORDER BY priority, run_at, id LIMIT 1) AS h ON q.paused = 0
WHERE q.name = :queue
