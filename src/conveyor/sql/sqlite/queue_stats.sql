-- Per queue: the oldest runnable job's enqueue time, and jobs finished since :since.
SELECT queue,
       min(CASE WHEN state = 'queued' THEN enqueued_at END) AS oldest_queued_at,
       sum(CASE WHEN state IN ('succeeded', 'failed', 'cancelled') AND finished_at >= :since
                THEN 1 ELSE 0 END) AS finished_recently
FROM conveyor_jobs
GROUP BY queue
