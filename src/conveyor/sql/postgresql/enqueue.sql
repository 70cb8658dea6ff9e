-- Times by the database clock. A clash on the unique-key index inserts nothing, returns no row.
INSERT INTO conveyor_jobs
    (task, queue, state, priority, args, kwargs, unique_key, max_attempts, run_at, enqueued_at,
     backoff, timeout)
SELECT %(task)s, %(queue)s,
       CASE WHEN due.run_at > due.now THEN 'scheduled' ELSE 'queued' END,
       %(priority)s, %(args)s, %(kwargs)s, %(unique_key)s, %(max_attempts)s, due.run_at, due.now,
       %(backoff)s, %(timeout)s
FROM (SELECT clock.now,
             coalesce(clock.now + %(delay)s::double precision,
                      %(run_at)s::double precision, clock.now) AS run_at
      FROM (SELECT conveyor_now() AS now) AS clock) AS due
ON CONFLICT DO NOTHING
RETURNING *
