-- A weighted claim: the placeholder holds one claim_candidates_weighted_* term per queue;
-- the candidates with the smallest shares are taken (weighted fair queuing). Each claimed
-- row gets a fresh lease token: writes that name an older token are refused.
UPDATE conveyor_jobs
SET state            = 'running',
    attempts         = attempts + 1,
    lease_owner      = :owner,
    worker           = :owner,
    lease_token      = random() & 9223372036854775807,
    lease_expires_at = :now + :lease,
    started_at       = :now
WHERE state = 'queued'
  AND id IN (SELECT id FROM ({candidates}) ORDER BY share, id LIMIT :limit)
RETURNING id, task, queue, priority, args, kwargs, attempts, max_attempts, lease_token,
          run_at, enqueued_at, cancel_requested, backoff, timeout, soft_timeout,
          followers
