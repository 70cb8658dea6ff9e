-- Per queue: since when the longest-waiting runnable job could have run (its run_at: the
-- enqueue time, or the due time of a delayed or retried job), and jobs finished since :since.
SELECT queue,
       min(CASE WHEN state = 'queued' THEN run_at END) AS oldest_queued_at,
       sum(CASE WHEN state IN ('succeeded', 'failed', 'cancelled') AND finished_at >= :since
                THEN 1 ELSE 0 END) AS finished_recently
FROM conveyor_jobs
GROUP BY queue
