-- One job. The id comes from the identity column. A clash on the unique-key index inserts
-- nothing and returns no row.
INSERT INTO conveyor_jobs
    (task, queue, state, priority, args, kwargs, unique_key, max_attempts, run_at,
     enqueued_at, backoff, timeout)
SELECT :task, :queue, CASE WHEN due.run_at > due.now THEN 'scheduled' ELSE 'queued' END,
       :priority, :args, :kwargs, :unique_key, :max_attempts, due.run_at, due.now,
       :backoff, :timeout
FROM (SELECT clock.now, coalesce(clock.now + :delay::float8, :run_at::float8, clock.now)
             AS run_at
      FROM (SELECT :now AS now) AS clock) AS due
ON CONFLICT DO NOTHING
RETURNING id, enqueued_at
