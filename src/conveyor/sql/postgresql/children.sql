-- Children whose parents ended, in id order (locked in that order, so two transactions
-- releasing children of several parents never deadlock).
SELECT id, state, pending_parents, on_parent_failure, feed, args, queue FROM conveyor_jobs
WHERE id = ANY(:ids::bigint[])
ORDER BY id
FOR UPDATE
