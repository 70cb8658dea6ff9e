-- One job without a unique key, its id computed in the statement (as next_id.sql does).
-- Parameters as enqueue.sql, without the id.
INSERT INTO conveyor_jobs
    (id, task, queue, state, priority, args, kwargs, unique_key, max_attempts, run_at,
     enqueued_at)
VALUES (max(coalesce((SELECT max(id) FROM conveyor_jobs), 0),
            (SELECT floor FROM conveyor_id_floor)) + 1,
        ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
RETURNING id
