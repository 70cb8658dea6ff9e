-- A workflow's jobs that wait for nothing (a chord's members), as enqueue_batch with their
-- workflow and whether they have followers; {rows} is one VALUES tuple per job.
INSERT INTO conveyor_jobs
    (id, task, queue, state, priority, args, kwargs, max_attempts, run_at, enqueued_at,
     backoff, timeout, soft_timeout, limit_key, workflow, followers)
VALUES {rows}
