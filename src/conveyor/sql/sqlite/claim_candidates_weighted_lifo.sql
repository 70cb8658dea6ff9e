-- A LIFO queue's candidates for a weighted claim (see claim_candidates_lifo_queue and
-- claim_candidates_weighted_fifo).
SELECT id, :start_{n} + row_number() OVER (ORDER BY run_at DESC, id DESC) * 1.0 / :weight_{n}
       AS share
FROM (
    SELECT id, priority, run_at FROM conveyor_jobs
    WHERE state = 'queued' AND limit_key IS NULL
      AND queue = (SELECT :queue_{n} WHERE NOT EXISTS (
              SELECT 1 FROM conveyor_queues WHERE name = :queue_{n} AND paused))
      AND priority = (SELECT min(priority) FROM conveyor_jobs
                      WHERE state = 'queued' AND limit_key IS NULL AND queue = :queue_{n})
    ORDER BY run_at DESC, id DESC
    LIMIT :limit
)
