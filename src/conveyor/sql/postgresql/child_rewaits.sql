-- A child cancelled because a parent failed waits again: that parent is being retried.
-- (`state || ''`: not answered from the finished jobs' index; see ack_succeeded.)
UPDATE conveyor_jobs
SET state = 'waiting', pending_parents = :pending, error = NULL, finished_at = NULL,
    cancel_requested = false
WHERE id = :id AND state || '' = 'cancelled'
RETURNING id
