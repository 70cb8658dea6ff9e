-- Jobs without unique keys, in the order given: {rows} stands for the batch's rows (the
-- dialect binds each row's values in the order of `batch`'s columns). Ids follow on from
-- the highest id ever used (see raise_id_floor), in the order given (n rises).
WITH batch (n, task, queue, priority, args, kwargs, max_attempts, delay, run_at, backoff,
            timeout) AS (VALUES {rows}),
due AS (SELECT batch.*, coalesce(:now + delay, run_at, :now) AS due_at FROM batch)
INSERT INTO conveyor_jobs
    (id, task, queue, state, priority, args, kwargs, max_attempts, run_at, enqueued_at,
     backoff, timeout)
SELECT max(coalesce((SELECT max(id) FROM conveyor_jobs), 0),
           (SELECT floor FROM conveyor_id_floor)) + n - (SELECT min(n) FROM batch) + 1,
       task, queue, CASE WHEN due_at > :now THEN 'scheduled' ELSE 'queued' END,
       priority, args, kwargs, max_attempts, due_at, :now, backoff, timeout
FROM due
WHERE true
RETURNING id, state, run_at, enqueued_at
