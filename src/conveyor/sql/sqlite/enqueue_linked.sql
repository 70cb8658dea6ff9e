-- One job that waits for others, is fed their results, has callbacks or belongs to a
-- workflow: its state is decided by the store (waiting, or what its ended parents allow).
-- Otherwise as enqueue.
INSERT INTO conveyor_jobs
    (id, task, queue, state, priority, args, kwargs, unique_key, max_attempts, run_at,
     enqueued_at, backoff, timeout, soft_timeout, limit_key, workflow, pending_parents,
     on_parent_failure, feed, followers, callbacks, error, finished_at)
VALUES (max(coalesce((SELECT max(id) FROM conveyor_jobs), 0),
            (SELECT floor FROM conveyor_id_floor)) + 1,
        :task, :queue,
        CASE WHEN :state IS NOT NULL THEN :state
             WHEN coalesce(:now + :delay, CAST(:run_at AS DOUBLE PRECISION), :now) > :now
             THEN 'scheduled' ELSE 'queued' END,
        :priority, :args, :kwargs, :unique_key, :max_attempts,
        coalesce(:now + :delay, CAST(:run_at AS DOUBLE PRECISION), :now), :now,
        :backoff, :timeout, :soft_timeout, :limit_key, :workflow, :pending_parents,
        :on_parent_failure, :feed, :followers, :callbacks, :error,
        CASE WHEN :state = 'cancelled' THEN :now END)
ON CONFLICT DO NOTHING
RETURNING id, enqueued_at, state, run_at
