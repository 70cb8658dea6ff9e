-- One job. Its id comes from the identity column. A clash on the unique-key index inserts
-- nothing and returns no row. The job is announced in the same statement (delivered at
-- commit), so on its own it is stored and announced in one round trip.
WITH job AS (
    INSERT INTO conveyor_jobs
        (task, queue, state, priority, args, kwargs, unique_key, max_attempts, run_at,
         enqueued_at, backoff, timeout, soft_timeout, limit_key)
    VALUES (:task, :queue,
            CASE WHEN coalesce(:now + :delay, CAST(:run_at AS DOUBLE PRECISION), :now) > :now
                 THEN 'scheduled' ELSE 'queued' END,
            :priority, :args, :kwargs, :unique_key, :max_attempts,
            coalesce(:now + :delay, CAST(:run_at AS DOUBLE PRECISION), :now), :now,
            :backoff, :timeout, :soft_timeout, :limit_key)
    ON CONFLICT DO NOTHING
    RETURNING id, enqueued_at
)
SELECT job.id, job.enqueued_at, pg_notify(:channel, :queue) AS announced FROM job
