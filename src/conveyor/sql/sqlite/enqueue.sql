-- Parameters, in order: id, task, queue, state, priority, args, kwargs, unique_key,
-- max_attempts, run_at, enqueued_at. A clash on the unique-key index inserts nothing and
-- returns no row.
INSERT INTO conveyor_jobs
    (id, task, queue, state, priority, args, kwargs, unique_key, max_attempts, run_at,
     enqueued_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING
RETURNING id
