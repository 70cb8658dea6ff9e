-- One queue's best candidates, in the order the partial index conveyor_jobs_queued keeps them.
-- A paused queue seeks NULL, which finds nothing: the pause is a condition of the claim.
SELECT * FROM (
    SELECT id, priority, run_at FROM conveyor_jobs
    WHERE state = 'queued' AND limit_key IS NULL
      AND queue = (SELECT :queue_{n} WHERE NOT EXISTS (
              SELECT 1 FROM conveyor_queues WHERE name = :queue_{n} AND paused))
    ORDER BY priority, run_at, id
    LIMIT :limit
)
