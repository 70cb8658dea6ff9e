-- A workflow's jobs that wait for nothing (a chord's members), as enqueue_batch with their
-- workflow and whether they have followers; one statement, its columns as arrays.
INSERT INTO conveyor_jobs
    (id, task, queue, state, priority, args, kwargs, max_attempts, run_at, enqueued_at,
     backoff, timeout, soft_timeout, limit_key, workflow, followers)
SELECT * FROM unnest(:id::bigint[], :task::text[], :queue::text[], :state::text[],
                     :priority::int[], :args::text[], :kwargs::text[], :max_attempts::int[],
                     :run_at::float8[], :enqueued_at::float8[], :backoff::float8[],
                     :timeout::float8[], :soft_timeout::float8[], :limit_key::text[],
                     :workflow::bigint[], :followers::boolean[])
