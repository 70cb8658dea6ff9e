-- The candidates of a worker on many queues (claim.sql's placeholder when one UNION ALL term
-- per queue would be too many): the queues come as one JSON array, and each queue's best
-- candidates are still read in index order, so the cost stays flat as the backlog grows.
-- Paused queues are left out.
SELECT job.id, job.priority, job.run_at
FROM json_each(:queues) AS wanted, conveyor_jobs AS job
WHERE wanted.value NOT IN (SELECT name FROM conveyor_queues WHERE paused)
  AND job.id IN (
    SELECT id FROM conveyor_jobs
    WHERE state = 'queued' AND limit_key IS NULL AND queue = wanted.value
    ORDER BY priority, run_at, id
    LIMIT :limit
)
