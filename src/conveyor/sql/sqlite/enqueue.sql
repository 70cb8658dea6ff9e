-- Parameters, in order: task, queue, state, priority, args, kwargs, unique_key,
-- max_attempts, run_at, enqueued_at, backoff, timeout. The id is computed in the statement
-- (as next_id.sql does), so it is right even when a caller's connection opens its
-- transaction only here. A clash on the unique-key index inserts nothing and returns no row.
INSERT INTO conveyor_jobs
    (id, task, queue, state, priority, args, kwargs, unique_key, max_attempts, run_at,
     enqueued_at, backoff, timeout)
VALUES (max(coalesce((SELECT max(id) FROM conveyor_jobs), 0),
            (SELECT floor FROM conveyor_id_floor)) + 1,
        ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING
RETURNING id
