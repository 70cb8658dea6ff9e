UPDATE conveyor_jobs
SET state = 'cancelled', finished_at = :now, cancel_requested = true
WHERE id = :id AND state IN ('waiting', 'scheduled', 'queued')
RETURNING id, followers
