-- Jobs a new job is to wait for: whether each exists and has ended.
SELECT id, state, result, error FROM conveyor_jobs
WHERE id IN (SELECT value FROM json_each(:ids))
ORDER BY id
