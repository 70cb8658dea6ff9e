SELECT queue,
       min(CASE WHEN state = 'queued' THEN run_at END) AS oldest_queued_at,
       sum(CASE WHEN state IN ('succeeded', 'failed', 'cancelled')
                 AND finished_at >= :now - :window THEN 1 ELSE 0 END) AS finished_recently
FROM conveyor_jobs
GROUP BY queue
