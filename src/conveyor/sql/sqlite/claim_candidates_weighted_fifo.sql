-- A FIFO queue's candidates for a weighted claim: each with its share, the queue's share so
-- far (:start_{n}) plus its rank in the queue's own order over the queue's weight.
SELECT id, :start_{n} + row_number() OVER (ORDER BY priority, run_at, id) * 1.0 / :weight_{n}
       AS share
FROM (
    SELECT id, priority, run_at FROM conveyor_jobs
    WHERE state = 'queued' AND limit_key IS NULL
      AND queue = (SELECT :queue_{n} WHERE NOT EXISTS (
              SELECT 1 FROM conveyor_queues WHERE name = :queue_{n} AND paused))
    ORDER BY priority, run_at, id
    LIMIT :limit
)
