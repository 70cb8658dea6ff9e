SELECT run_at - :now AS wait FROM conveyor_jobs
WHERE state = 'scheduled' AND queue IN (SELECT unnest(:queues::text[]))
ORDER BY run_at
LIMIT 1
