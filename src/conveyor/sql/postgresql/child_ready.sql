-- Every parent ended: it runs (at its own time, if that is still to come), its parents'
-- results fed into its arguments.
UPDATE conveyor_jobs
SET state = CASE WHEN run_at > :now THEN 'scheduled' ELSE 'queued' END,
    pending_parents = 0, args = :args
WHERE id = :id AND state = 'waiting'
RETURNING id
