-- A clash on the unique-key index inserts nothing and returns no row.
INSERT INTO conveyor_jobs
    (task, queue, state, priority, args, kwargs, unique_key, max_attempts, run_at, enqueued_at)
VALUES
    (:task, :queue, :state, :priority, :args, :kwargs, :unique_key, :max_attempts, :run_at, :now)
ON CONFLICT DO NOTHING
RETURNING *
