-- One job, run once per job of a batch too. The id is computed in the statement from the
-- highest id ever used (see raise_id_floor), so it is right inside a caller's transaction
-- too. A clash on the unique-key index inserts nothing and returns no row.
INSERT INTO conveyor_jobs
    (id, task, queue, state, priority, args, kwargs, unique_key, max_attempts, run_at,
     enqueued_at, backoff, timeout)
SELECT max(coalesce((SELECT max(id) FROM conveyor_jobs), 0),
           (SELECT floor FROM conveyor_id_floor)) + 1,
       :task, :queue, CASE WHEN due.run_at > :now THEN 'scheduled' ELSE 'queued' END,
       :priority, :args, :kwargs, :unique_key, :max_attempts, due.run_at, :now,
       :backoff, :timeout
FROM (SELECT coalesce(:now + :delay, :run_at, :now) AS run_at) AS due
WHERE true
ON CONFLICT DO NOTHING
RETURNING id, enqueued_at
