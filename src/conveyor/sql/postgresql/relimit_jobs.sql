-- A task gained limits (its jobs without a key share the key '') or lost them (its jobs go
-- back to the plain claim). Every job of the task that is waiting, running (it counts toward a
-- concurrency limit) or may come back (a retry, `jobs retry` of a failed or cancelled one):
-- so no way back to the queue needs to look the task's limits up.
UPDATE conveyor_jobs
SET limit_key = CASE WHEN :limited::boolean THEN '' ELSE NULL END
WHERE task = :task AND state IN ('waiting', 'scheduled', 'queued', 'running', 'failed', 'cancelled')
  AND (limit_key IS NULL) = :limited::boolean
