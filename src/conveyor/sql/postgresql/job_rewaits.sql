-- A job with parents, queued again by an admin retry, waits for those not ended.
UPDATE conveyor_jobs SET state = 'waiting', pending_parents = :pending
WHERE id = :id AND state = 'queued'
