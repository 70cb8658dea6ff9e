-- Jobs without unique keys, run once per job of the batch (a prepared statement in this
-- process), in the order given; ids as enqueue.sql computes them.
INSERT INTO conveyor_jobs
    (id, task, queue, state, priority, args, kwargs, max_attempts, run_at, enqueued_at,
     backoff, timeout)
SELECT max(coalesce((SELECT max(id) FROM conveyor_jobs), 0),
           (SELECT floor FROM conveyor_id_floor)) + 1,
       :task, :queue, CASE WHEN due.run_at > :now THEN 'scheduled' ELSE 'queued' END,
       :priority, :args, :kwargs, :max_attempts, due.run_at, :now, :backoff, :timeout
FROM (SELECT coalesce(:now + :delay, :run_at, :now) AS run_at) AS due
RETURNING *
