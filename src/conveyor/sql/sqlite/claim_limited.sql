-- Run once per (queue, task, limit key) of a batch: its best :limit jobs, as many as its
-- limits allow now. Returns the key, so the caller counts what each key started.
UPDATE conveyor_jobs
SET state            = 'running',
    attempts         = attempts + 1,
    lease_owner      = :owner,
    worker           = :owner,
    lease_token      = random() & 9223372036854775807,
    lease_expires_at = :now + :lease,
    started_at       = :now
WHERE id IN (SELECT id FROM conveyor_jobs
             WHERE state = 'queued' AND limit_key IS NOT NULL
               AND queue = :queue AND task = :task AND limit_key = :key
             ORDER BY priority, run_at, id
             LIMIT :limit)
RETURNING id, task, queue, priority, args, kwargs, attempts, max_attempts, lease_token,
          run_at, enqueued_at, cancel_requested, backoff, timeout, soft_timeout, limit_key,
          followers
