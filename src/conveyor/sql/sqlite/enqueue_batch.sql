-- Same parameters as enqueue.sql, repeated once per job ({rows} groups), for jobs without a
-- unique key: one statement for many rows.
INSERT INTO conveyor_jobs
    (id, task, queue, state, priority, args, kwargs, unique_key, max_attempts, run_at,
     enqueued_at, backoff, timeout)
VALUES {rows}
