-- One job. Its id follows on from the highest id ever used (see raise_id_floor), computed in
-- the statement so it is right inside a caller's transaction too. A clash on the unique-key
-- index inserts nothing and returns no row.
INSERT INTO conveyor_jobs
    (id, task, queue, state, priority, args, kwargs, unique_key, max_attempts, run_at,
     enqueued_at, backoff, timeout, soft_timeout, limit_key)
VALUES (max(coalesce((SELECT max(id) FROM conveyor_jobs), 0),
            (SELECT floor FROM conveyor_id_floor)) + 1,
        :task, :queue,
        CASE WHEN coalesce(:now + :delay, CAST(:run_at AS DOUBLE PRECISION), :now) > :now
             THEN 'scheduled' ELSE 'queued' END,
        :priority, :args, :kwargs, :unique_key, :max_attempts,
        coalesce(:now + :delay, CAST(:run_at AS DOUBLE PRECISION), :now), :now,
        :backoff, :timeout, :soft_timeout, :limit_key)
ON CONFLICT DO NOTHING
RETURNING id, enqueued_at
