-- One job. Its id comes from the identity column. A clash on the unique-key index inserts
-- nothing and returns no row.
INSERT INTO conveyor_jobs
    (task, queue, state, priority, args, kwargs, unique_key, max_attempts, run_at,
     enqueued_at, backoff, timeout, soft_timeout, limit_key)
VALUES (:task, :queue,
        CASE WHEN coalesce(:now + :delay, CAST(:run_at AS DOUBLE PRECISION), :now) > :now
             THEN 'scheduled' ELSE 'queued' END,
        :priority, :args, :kwargs, :unique_key, :max_attempts,
        coalesce(:now + :delay, CAST(:run_at AS DOUBLE PRECISION), :now), :now,
        :backoff, :timeout, :soft_timeout, :limit_key)
ON CONFLICT DO NOTHING
RETURNING id, enqueued_at
