-- Many jobs without a unique key in one statement, one array per column, in order.
INSERT INTO conveyor_jobs
    (task, queue, state, priority, args, kwargs, max_attempts, run_at, enqueued_at, backoff,
     timeout)
SELECT j.task, j.queue,
       CASE WHEN coalesce(clock.now + j.delay, j.run_at, clock.now) > clock.now
            THEN 'scheduled' ELSE 'queued' END,
       j.priority, j.args, j.kwargs, j.max_attempts,
       coalesce(clock.now + j.delay, j.run_at, clock.now), clock.now, j.backoff, j.timeout
FROM unnest(%(tasks)s::text[], %(queues)s::text[], %(priorities)s::int[], %(args)s::text[],
            %(kwargs)s::text[], %(max_attempts)s::int[], %(delays)s::float8[],
            %(run_ats)s::float8[], %(backoffs)s::float8[], %(timeouts)s::float8[])
     WITH ORDINALITY
     AS j (task, queue, priority, args, kwargs, max_attempts, delay, run_at, backoff, timeout,
           n),
     (SELECT conveyor_now() AS now) AS clock
ORDER BY j.n
RETURNING *
