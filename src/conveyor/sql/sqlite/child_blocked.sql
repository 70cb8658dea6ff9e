-- A parent failed or was cancelled and the child's policy is 'cancel'.
UPDATE conveyor_jobs
SET state = 'cancelled', error = :error, finished_at = :now
WHERE id = :id AND state = 'waiting'
RETURNING id, followers
