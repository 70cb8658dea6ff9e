SELECT run_at - :now AS wait FROM conveyor_jobs
WHERE state = 'scheduled' AND queue IN (SELECT value FROM json_each(:queues))
ORDER BY run_at
LIMIT 1
