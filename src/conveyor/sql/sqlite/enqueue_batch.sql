-- Jobs without unique keys, their ids reserved (reserve_ids) and their times decided by the
-- database's clock; {rows} is one VALUES tuple per job (a statement per 500 jobs).
INSERT INTO conveyor_jobs
    (id, task, queue, state, priority, args, kwargs, max_attempts, run_at, enqueued_at,
     backoff, timeout, soft_timeout, limit_key)
VALUES {rows}
