-- Jobs without unique keys, in the order given: one statement for the batch, its columns as
-- arrays. Identity values follow the ORDER BY, so ids rise in the order given (n).
WITH batch AS (
    SELECT * FROM unnest(:n::int[], :task::text[], :queue::text[], :priority::int[],
                         :args::text[], :kwargs::text[], :max_attempts::int[], :delay::float8[],
                         :run_at::float8[], :backoff::float8[], :timeout::float8[])
         AS batch (n, task, queue, priority, args, kwargs, max_attempts, delay, run_at,
                   backoff, timeout)
),
due AS (SELECT batch.*, coalesce(:now + delay, run_at, :now) AS due_at FROM batch)
INSERT INTO conveyor_jobs
    (task, queue, state, priority, args, kwargs, max_attempts, run_at, enqueued_at, backoff,
     timeout)
SELECT task, queue, CASE WHEN due_at > :now THEN 'scheduled' ELSE 'queued' END,
       priority, args, kwargs, max_attempts, due_at, :now, backoff, timeout
FROM due
ORDER BY n
RETURNING id, state, run_at, enqueued_at
