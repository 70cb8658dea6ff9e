-- A LIFO queue's candidates: the newest jobs of its best priority, read backwards along the
-- partial index conveyor_jobs_queued (never a sort of the queue). A round takes at most that
-- priority's jobs; the dispatcher claims again at once while a round claims something.
SELECT * FROM (
    SELECT id, priority, run_at FROM conveyor_jobs
    WHERE state = 'queued' AND limit_key IS NULL
      AND queue = (SELECT :queue_{n} WHERE NOT EXISTS (
              SELECT 1 FROM conveyor_queues WHERE name = :queue_{n} AND paused))
      AND priority = (SELECT min(priority) FROM conveyor_jobs
                      WHERE state = 'queued' AND limit_key IS NULL AND queue = :queue_{n})
    ORDER BY run_at DESC, id DESC
    LIMIT :limit
)
