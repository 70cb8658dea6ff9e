-- Jobs without unique keys, their ids reserved (reserve_ids) and their times decided by the
-- database's clock; one statement for the batch, its columns as arrays.
INSERT INTO conveyor_jobs
    (id, task, queue, state, priority, args, kwargs, max_attempts, run_at, enqueued_at,
     backoff, timeout, soft_timeout, limit_key)
SELECT * FROM unnest(:id::bigint[], :task::text[], :queue::text[], :state::text[],
                     :priority::int[], :args::text[], :kwargs::text[], :max_attempts::int[],
                     :run_at::float8[], :enqueued_at::float8[], :backoff::float8[],
                     :timeout::float8[], :soft_timeout::float8[], :limit_key::text[])
