-- When the first scheduled job of the queues in :queues (a JSON array) is due. Walks the
-- scheduled jobs in run_at order and stops at the first one of these queues.
SELECT run_at FROM conveyor_jobs
WHERE state = 'scheduled' AND queue IN (SELECT value FROM json_each(:queues))
ORDER BY run_at
LIMIT 1
