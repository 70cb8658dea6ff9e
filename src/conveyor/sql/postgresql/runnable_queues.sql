-- Distinct queues holding a queued job, one index seek each (a loose index scan), then the
-- queues of scheduled jobs already due; paused queues are not runnable.
WITH RECURSIVE queued (queue) AS (
    SELECT min(queue) FROM conveyor_jobs WHERE state = 'queued'
    UNION ALL
    SELECT (SELECT min(queue) FROM conveyor_jobs
            WHERE state = 'queued' AND queue > queued.queue)
    FROM queued WHERE queued.queue IS NOT NULL
)
SELECT queue FROM (
    SELECT queue FROM queued WHERE queue IS NOT NULL
    UNION
    SELECT queue FROM conveyor_jobs WHERE state = 'scheduled' AND run_at <= :now
) AS runnable
WHERE queue NOT IN (SELECT name FROM conveyor_queues WHERE paused)
