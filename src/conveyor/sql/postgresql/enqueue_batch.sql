-- Jobs without unique keys, run once per batch with its columns as arrays. Identity values
-- follow the ORDER BY, so rows sort back by id into the order given.
INSERT INTO conveyor_jobs
    (task, queue, state, priority, args, kwargs, max_attempts, run_at, enqueued_at, backoff,
     timeout)
SELECT j.task, j.queue,
       CASE WHEN coalesce(clock.now + j.delay, j.run_at, clock.now) > clock.now
            THEN 'scheduled' ELSE 'queued' END,
       j.priority, j.args, j.kwargs, j.max_attempts,
       coalesce(clock.now + j.delay, j.run_at, clock.now), clock.now, j.backoff, j.timeout
FROM unnest(:task::text[], :queue::text[], :priority::int[], :args::text[],
            :kwargs::text[], :max_attempts::int[], :delay::float8[],
            :run_at::float8[], :backoff::float8[], :timeout::float8[])
     WITH ORDINALITY
     AS j (task, queue, priority, args, kwargs, max_attempts, delay, run_at, backoff, timeout,
           n),
     (SELECT :now AS now) AS clock
ORDER BY j.n
RETURNING *
