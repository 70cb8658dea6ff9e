-- Jobs a new job is to wait for: whether each exists and has ended. Locked (shared) until
-- the new job and its edges commit, so a parent cannot end unseen in between.
SELECT id, state, result, error FROM conveyor_jobs
WHERE id = ANY(:ids::bigint[])
ORDER BY id
FOR SHARE
