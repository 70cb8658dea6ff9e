-- Hand a job back without counting the attempt, claimable again :delay seconds from now;
-- with no delay it keeps its place in its queue (it never ran, or it is to run again at once).
-- A cancel requested meanwhile ends it (its followers are released then).
-- (`state || ''`: not answered from the running jobs' index; see ack_succeeded.)
UPDATE conveyor_jobs
SET state = CASE WHEN cancel_requested THEN 'cancelled'
                 WHEN :delay > 0 THEN 'scheduled'
                 ELSE 'queued' END,
    finished_at = CASE WHEN cancel_requested THEN :now END,
    run_at = CASE WHEN :delay > 0 THEN greatest(run_at, :now + :delay) ELSE run_at END,
    attempts = greatest(attempts - 1, 0), started_at = NULL,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = :id AND lease_token = :token AND state || '' = 'running'
RETURNING id, state, followers
