-- One queue's best candidates, in the order the partial index conveyor_jobs_queued keeps them.
SELECT * FROM (
    SELECT id, priority, run_at FROM conveyor_jobs
    WHERE state = 'queued' AND queue = :queue_{n}
    ORDER BY priority, run_at, id
    LIMIT :limit
)
