-- A workflow's members that have not started end cancelled (what waits for them outside the
-- workflow is released by the store).
UPDATE conveyor_jobs
SET state = 'cancelled', finished_at = :now, cancel_requested = true
WHERE workflow = :id AND state IN ('waiting', 'scheduled', 'queued')
RETURNING id, followers
