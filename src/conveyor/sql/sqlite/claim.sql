-- The candidates placeholder is one ordered, limited SELECT per queue, merged;
-- see claim_candidates_one_queue. Each claimed row gets a fresh lease token:
-- writes that name an older token are refused.
UPDATE conveyor_jobs
SET state            = 'running',
    attempts         = attempts + 1,
    lease_owner      = :owner,
    worker           = :owner,
    lease_token      = random() & 9223372036854775807,
    lease_expires_at = :now + :lease,
    started_at       = :now
WHERE state = 'queued'
  AND id IN (SELECT id FROM ({candidates}) ORDER BY priority, run_at, id LIMIT :limit)
RETURNING id, task, queue, priority, args, kwargs, attempts, max_attempts, lease_token,
          run_at, enqueued_at, cancel_requested, backoff, timeout, soft_timeout,
          followers
