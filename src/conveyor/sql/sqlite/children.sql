-- Children whose parents ended, in id order (PostgreSQL locks them in that order, so two
-- transactions releasing children of several parents never deadlock).
SELECT id, state, pending_parents, on_parent_failure, feed, args, queue FROM conveyor_jobs
WHERE id IN (SELECT value FROM json_each(:ids))
ORDER BY id
