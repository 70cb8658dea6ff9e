-- Distinct queues holding a queued job, one index seek each along both queued indexes (a
-- loose index scan), then the queues of scheduled jobs already due; paused queues are not
-- runnable.
WITH RECURSIVE plain (queue) AS (
    SELECT min(queue) FROM conveyor_jobs WHERE state = 'queued' AND limit_key IS NULL
    UNION ALL
    SELECT (SELECT min(queue) FROM conveyor_jobs
            WHERE state = 'queued' AND limit_key IS NULL AND queue > plain.queue)
    FROM plain WHERE plain.queue IS NOT NULL
), limited (queue) AS (
    SELECT min(queue) FROM conveyor_jobs WHERE state = 'queued' AND limit_key IS NOT NULL
    UNION ALL
    SELECT (SELECT min(queue) FROM conveyor_jobs
            WHERE state = 'queued' AND limit_key IS NOT NULL AND queue > limited.queue)
    FROM limited WHERE limited.queue IS NOT NULL
)
SELECT queue FROM (
    SELECT queue FROM plain WHERE queue IS NOT NULL
    UNION
    SELECT queue FROM limited WHERE queue IS NOT NULL
    UNION
    SELECT queue FROM conveyor_jobs WHERE state = 'scheduled' AND run_at <= :now
) AS runnable
WHERE queue NOT IN (SELECT name FROM conveyor_queues WHERE paused)
