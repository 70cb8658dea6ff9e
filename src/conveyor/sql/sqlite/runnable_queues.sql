-- Queues holding a job that could run now: queued, or scheduled and due by :now. The queued
-- ones are found by skipping through the queued index one queue at a time, so the cost grows
-- with the number of queues, not of jobs.
WITH RECURSIVE queued (queue) AS (
    SELECT min(queue) FROM conveyor_jobs WHERE state = 'queued'
    UNION ALL
    SELECT (SELECT min(queue) FROM conveyor_jobs
            WHERE state = 'queued' AND queue > queued.queue)
    FROM queued WHERE queued.queue IS NOT NULL
)
SELECT queue FROM queued WHERE queue IS NOT NULL
UNION
SELECT queue FROM conveyor_jobs WHERE state = 'scheduled' AND run_at <= :now
