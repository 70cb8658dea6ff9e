-- Jobs a new job is to wait for: whether each exists and has ended. Locked until the new
-- job and its edges commit, so a parent cannot end unseen in between (in id order, and not
-- shared: two enqueues after one parent, each then marking it, never deadlock).
SELECT id, state, result, error FROM conveyor_jobs
WHERE id = ANY(:ids::bigint[])
ORDER BY id
FOR NO KEY UPDATE
